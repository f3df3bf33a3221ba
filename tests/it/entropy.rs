//! The workspace builds aws-lc without its CPU jitter entropy source (`.cargo/config.toml`;
//! SECURITY.md, "Entropy"): gathering it costs every process tens of milliseconds of CPU the
//! first time it signs, most of a one-shot `ralio` command. This test binary signs with aws-lc
//! through the SDK, so it links whatever aws-lc the build chose.

#[test]
fn aws_lc_is_built_without_the_cpu_jitter_entropy_source() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bytes = std::fs::read(&exe).expect("the test binary is readable");
    // This binary holds this test's own string literals: spell the symbols backwards here so
    // that the search can only find aws-lc's.
    let symbol = |reversed: &str| reversed.bytes().rev().collect::<Vec<u8>>();
    assert!(
        contains(&bytes, &symbol("ecruos_yportne_teg")),
        "aws-lc's entropy symbols are not in {}: a stripped binary would pass the check below \
         without meaning anything",
        exe.display()
    );
    assert!(
        !contains(&bytes, &symbol("colla_rotcelloc_yportne_tnej")),
        "aws-lc's CPU jitter entropy collector is linked into {}: the build did not see \
         AWS_LC_SYS_NO_JITTER_ENTROPY=1 (.cargo/config.toml [env])",
        exe.display()
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let mut rest = haystack;
    while let Some(at) = rest.iter().position(|&b| b == first) {
        if rest[at..].starts_with(needle) {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}
