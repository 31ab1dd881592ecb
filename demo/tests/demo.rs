//! The demo end to end, as `scripts/demo.sh` runs it (small sizes).

#[test]
fn the_demo_runs_to_completion() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replicator-demo"))
        .args(["--rows", "300", "--seconds", "2", "--rate", "100"])
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "snapshot done",
        "workload made",
        "cutover complete: downtime",
        "dbo.orders",
        "equal",
        "delta",
        "demo finished",
    ] {
        assert!(
            stdout.contains(want),
            "{want} missing from the demo's output:\n{stdout}"
        );
    }
    assert!(!stdout.contains("different"), "{stdout}");
}
