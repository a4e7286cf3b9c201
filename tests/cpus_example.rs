//! The `cpus` example, run from outside under `taskset -c 0`, must report 1.

use std::path::PathBuf;
use std::process::Command;

/// The `cpus` example binary, built by `cargo test` beside this test's own
/// binary (target/<profile>/examples/cpus), or built now if it is missing.
fn cpus_example() -> PathBuf {
    let test_binary = std::env::current_exe().expect("own path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let example = profile_dir.join("examples").join("cpus");
    if !example.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "cpus"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the cpus example failed");
    }
    example
}

#[test]
#[cfg_attr(
    parpool_portable_unix,
    ignore = "the paths of other Unix systems read no affinity mask (macOS has none)"
)]
fn the_cpus_example_reports_one_cpu_under_taskset() {
    let output = Command::new("taskset")
        .args(["-c", "0"])
        .arg(cpus_example())
        .env_remove("PARPOOL_WORKERS")
        .env_remove("PARPOOL_BACKEND")
        .env_remove("SLURM_CPUS_PER_TASK")
        .env_remove("NCPUS")
        .output()
        .expect("taskset (util-linux) is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("parpool will use 1 worker(s)"), "{stdout}");
    assert!(
        stdout.contains("decided by: the process's CPU affinity mask"),
        "{stdout}"
    );
    assert!(stdout.contains("with 1 worker(s)"), "{stdout}");
}

#[test]
fn the_cpus_example_follows_slurm() {
    // One CPU is the least any machine has, so the allocation is the
    // narrowest limit.
    let output = Command::new(cpus_example())
        .env_remove("PARPOOL_WORKERS")
        .env_remove("PARPOOL_BACKEND")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("parpool will use 1 worker(s)"), "{stdout}");
    assert!(
        stdout.contains("decided by: the Slurm allocation (SLURM_CPUS_PER_TASK)"),
        "{stdout}"
    );
}

#[test]
fn an_allocation_wider_than_the_machine_is_reported_but_not_used() {
    let output = Command::new(cpus_example())
        .env_remove("PARPOOL_WORKERS")
        .env_remove("PARPOOL_BACKEND")
        .env("SLURM_CPUS_PER_TASK", "100000")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("use 100000 worker(s)"), "{stdout}");
    assert!(
        stdout
            .contains("also considered: the Slurm allocation (SLURM_CPUS_PER_TASK) allows 100000"),
        "{stdout}"
    );
}

#[test]
fn notes_are_printed_in_the_per_rank_form_too() {
    let output = Command::new(cpus_example())
        .env_remove("PARPOOL_WORKERS")
        .env_remove("PARPOOL_BACKEND")
        .env("SLURM_PROCID", "3")
        .env("SLURM_CPUS_PER_TASK", "lots")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("rank 3: "), "{stdout}");
    assert!(
        stdout.contains(
            "rank 3:   note: SLURM_CPUS_PER_TASK=\"lots\" ignored: not a positive integer"
        ),
        "{stdout}"
    );
}
