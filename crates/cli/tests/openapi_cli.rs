//! `lightning openapi` prints the document the collector serves (scripts/gen-api-types
//! generates the TypeScript wire types from it).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lightning");

fn served() -> serde_json::Value {
    serde_json::to_value(lightning_collector::openapi_document()).unwrap()
}

#[test]
fn prints_the_served_document_to_stdout_or_a_file() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, served());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    let status = Command::new(BIN)
        .args(["openapi", "--out"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read(&file).unwrap();
    assert_eq!(written, out.stdout, "--out writes exactly what stdout gets");
}

#[test]
fn an_unwritable_out_path_is_an_error_naming_it() {
    let out = Command::new(BIN)
        .args(["openapi", "--out", "/nonexistent-dir/openapi.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent-dir/openapi.json"), "{stderr}");
}
