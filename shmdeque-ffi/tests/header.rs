//! The checked-in C header is what cbindgen generates from the current source. Regenerate it with
//! `SHMDEQUE_BLESS=1 cargo test -p shmdeque-ffi --test header`.

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header from src/");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the generated header is UTF-8");
    let path = dir.join("include/shmdeque.h");
    if std::env::var_os("SHMDEQUE_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/shmdeque.h");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != fresh {
        let line = current
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| current.lines().count().min(fresh.lines().count()) + 1, |i| i + 1);
        panic!(
            "shmdeque-ffi/include/shmdeque.h is out of date with src/ (first difference at line {line}); \
             regenerate it with `SHMDEQUE_BLESS=1 cargo test -p shmdeque-ffi --test header` and commit it"
        );
    }
}
