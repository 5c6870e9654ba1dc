//! The JSON parse-cost estimate against a counting allocator: for pathological shapes the
//! estimate is an upper bound of what parsing really allocates, so a body that passes
//! `check_json_cost` costs at most 12 × its size + 8 MiB to parse.
#![allow(
    unsafe_code,
    reason = "a counting GlobalAlloc (an unsafe trait) that only forwards to System"
)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use lightning_collector::limits::{
    check_json_cost, json_parse_cost, JSON_COST_FLOOR, JSON_COST_MULTIPLE,
};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// One measurement at a time (the test harness runs tests on several threads).
static SERIAL: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated while `f` runs, above what was allocated before.
fn peak_of<T>(f: impl FnOnce() -> T) -> usize {
    let before = CURRENT.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let value = f();
    let peak = PEAK.load(Ordering::SeqCst) - before;
    drop(value);
    peak
}

fn repeat(open: &str, item: impl Fn(usize) -> String, n: usize, close: &str) -> Vec<u8> {
    let mut out = open.to_string();
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item(i));
    }
    out.push_str(close);
    out.into_bytes()
}

#[test]
fn the_estimate_bounds_what_parsing_allocates() {
    let _serial = SERIAL.lock().unwrap();
    let n = 100_000;
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        (
            "many small keys",
            repeat("{", |i| format!("\"k{i}\":1"), n, "}"),
        ),
        ("dense integers", repeat("[", |_| "1".into(), n, "]")),
        ("empty objects", repeat("[", |_| "{}".into(), n, "]")),
        ("empty arrays", repeat("[", |_| "[]".into(), n, "]")),
        ("empty strings", repeat("[", |_| "\"\"".into(), n, "]")),
        ("nulls", repeat("[", |_| "null".into(), n, "]")),
        (
            "objects of one key",
            repeat("[", |i| format!("{{\"a{}\":0}}", i % 10), n, "]"),
        ),
        (
            "steps of small tool inputs",
            repeat(
                "{\"steps\":[",
                |i| {
                    format!("{{\"stepNumber\":{i},\"toolName\":\"R\",\"toolInput\":{{\"a\":1,\"b\":[1,2]}}}}")
                },
                n / 4,
                "]}",
            ),
        ),
        (
            "ordinary text",
            repeat("[", |_| format!("\"{}\"", "x".repeat(300)), n / 10, "]"),
        ),
    ];
    for (name, bytes) in shapes {
        let estimate = json_parse_cost(&bytes);
        let actual = peak_of(|| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
        println!(
            "{name:28} {:>9} bytes: parse allocates {:>10}, estimate {:>10} ({:.1}x body)",
            bytes.len(),
            actual,
            estimate,
            estimate as f64 / bytes.len() as f64
        );
        assert!(
            actual <= estimate,
            "{name}: parsing allocated {actual} bytes, more than the estimate {estimate}"
        );
        if name.starts_with("steps") {
            // The typed body the ingest route parses costs no more than the Value.
            let typed = peak_of(|| {
                serde_json::from_slice::<lightning_core::ingest::StepBatch>(&bytes).unwrap()
            });
            println!("{name:28} typed StepBatch allocates {typed:>10}");
            assert!(typed <= estimate, "{name}: typed parse allocated {typed}");
        }
        // Whatever passes the check costs at most the stated multiple.
        if check_json_cost(&bytes).is_ok() {
            assert!(
                actual <= bytes.len() * JSON_COST_MULTIPLE + JSON_COST_FLOOR,
                "{name}"
            );
        }
    }
}

#[test]
fn pathological_bodies_of_the_issue_are_refused() {
    let _serial = SERIAL.lock().unwrap();
    // 7 MiB of many small keys (the issue's 8 concurrent bodies took 600 MB).
    let mut body = b"{\"steps\":[{\"stepNumber\":1,\"toolName\":\"R\",\"toolInput\":{".to_vec();
    let mut i = 0;
    while body.len() < 7 * 1024 * 1024 {
        if i > 0 {
            body.push(b',');
        }
        body.extend(format!("\"{i:x}\":0").bytes());
        i += 1;
    }
    body.extend(b"}}]}");
    assert!(check_json_cost(&body).is_err());
    // The same size of ordinary steps passes.
    let ordinary = repeat(
        "{\"steps\":[",
        |i| {
            format!(
                "{{\"stepNumber\":{i},\"toolName\":\"Bash\",\"toolOutput\":\"{}\"}}",
                "y".repeat(9000)
            )
        },
        820,
        "]}",
    );
    assert!(ordinary.len() > 7 * 1024 * 1024);
    assert!(check_json_cost(&ordinary).is_ok());
}
