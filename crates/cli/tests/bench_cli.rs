//! `lightning bench` as a user runs it: the raw-ceiling suite in rounds, on both backends.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lightning");

fn bench(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("bench")
        .args([
            "--suite",
            "raw",
            "--seconds",
            "0.2",
            "--wide-concurrency",
            "2",
        ])
        .args(args)
        .output()
        .expect("run lightning bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn raw_suite_measures_every_writer_in_every_round() {
    let report: Value = serde_json::from_str(&bench(&[
        "--backend",
        "sqlite,postgres",
        "--rounds",
        "2",
        "--json",
    ]))
    .expect("JSON report");
    let rows = report["raw"].as_array().expect("raw rows");
    for (backend, writers) in [
        (
            "sqlite",
            vec![
                "INSERT 10 rows/tx",
                "INSERT 200 rows/tx",
                "lightning store, direct (no HTTP)",
                "lightning collector (HTTP, batches of --batch)",
            ],
        ),
        (
            "postgres",
            vec![
                "INSERT 10 rows/tx",
                "INSERT 200 rows/tx",
                "COPY 200 rows/tx",
                "lightning store, direct (no HTTP)",
                "lightning collector (HTTP, batches of --batch)",
            ],
        ),
    ] {
        for round in 1..=2 {
            let measured: Vec<&str> = rows
                .iter()
                .filter(|r| r["backend"] == backend && r["round"] == round)
                .map(|r| {
                    assert!(r["steps_per_sec"].as_f64().unwrap() > 0.0, "{r}");
                    r["what"].as_str().unwrap()
                })
                .collect();
            assert_eq!(measured, writers, "{backend} round {round}");
        }
    }
}

#[test]
fn raw_suite_prints_medians_and_ranges_of_within_round_ratios() {
    let text = bench(&["--backend", "sqlite", "--rounds", "3"]);
    assert!(text.contains("3 round(s), median (min–max)"), "{text}");
    let line = |what: &str| {
        text.lines()
            .find(|l| l.starts_with("sqlite") && l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line in:\n{text}"))
            .to_string()
    };
    // The last three columns: CPU µs per step of the load generator, the rest of the process
    // and the database ("-": SQLite runs in this process).
    let cpu = |line: &str| -> Vec<String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[fields.len() - 3..]
            .iter()
            .map(|f| f.to_string())
            .collect()
    };
    // The collector divided by itself, round by round; its load generator and server both used
    // some CPU.
    let collector = line("lightning collector");
    assert!(collector.contains(" 1.00x (1.00–1.00) "), "{text}");
    let [load, server, db] = <[String; 3]>::try_from(cpu(&collector)).unwrap();
    assert!(load.parse::<f64>().unwrap() > 0.0, "{collector}");
    assert!(server.parse::<f64>().unwrap() > 0.0, "{collector}");
    assert_eq!(db, "-", "{collector}");
    // Every other writer: a median rate with its range, and a ratio with its range; a raw
    // writer has no load generator.
    let insert = line("INSERT 10 rows/tx");
    assert_eq!(insert.matches('(').count(), 2, "{insert}");
    assert_eq!(cpu(&insert)[0], "0.0", "{insert}");
    assert!(
        text.contains("load / server / db: CPU µs per stored step"),
        "{text}"
    );
}
