//! The Azure Functions package has the layout the Functions host expects and an executable handler.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

/// `scripts/package-functions.sh` zips host.json, the function folder and an executable `kvsync`.
#[test]
fn the_function_app_zip_has_the_host_layout() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("kvsync-functions-{}.zip", std::process::id()));
    let status = Command::new(format!("{root}/scripts/package-functions.sh"))
        .arg(&out)
        .env("KVSYNC_BIN", env!("CARGO_BIN_EXE_kvsync"))
        .status()
        .unwrap();
    assert!(status.success());
    let listing = Command::new("python3")
        .args(["-c", "import sys,zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.filename, oct(i.external_attr >> 16))"])
        .arg(&out)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.contains("host.json"), "{listing}");
    assert!(listing.contains("KeyVaultEvents/function.json"), "{listing}");
    let exe = listing
        .lines()
        .find(|l| l.starts_with("kvsync "))
        .expect("kvsync in the zip");
    assert!(exe.ends_with("0o100755"), "{exe}");
    std::fs::remove_file(&out).unwrap();
}
