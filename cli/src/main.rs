fn main() {
    eprintln!("ralio: not implemented yet");
    std::process::exit(2);
}
