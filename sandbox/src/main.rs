//! `ralio-sandbox`: runs the local Ralio API.
fn main() {
    eprintln!("ralio-sandbox: not implemented yet");
    std::process::exit(2);
}
