//! A faithful, strict local Ralio API. Work in progress.
