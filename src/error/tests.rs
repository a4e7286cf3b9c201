//! Messages, kinds and the wire form of errors.

use super::*;

#[test]
fn messages_name_the_task_and_what_happened() {
    assert_eq!(
        Error::panic(3, 10, "boom".into(), None).to_string(),
        "task 3 of 10 panicked: boom"
    );
    assert_eq!(
        Error::crash(1, 4, "killed by signal 9 (SIGKILL)").to_string(),
        "task 1 of 4 crashed: worker killed by signal 9 (SIGKILL)"
    );
    let timeout = Error::timeout(2, 5, Duration::from_millis(1500), Duration::from_secs(1));
    assert_eq!(
        timeout.to_string(),
        "task 2 of 5 timed out: still running after 1.500 s (limit 1.000 s), worker killed"
    );
    assert!(timeout.is_timeout() && !timeout.is_panic() && !timeout.is_crash());
    assert_eq!(timeout.task_index(), Some(2));
    assert_eq!(
        Error::panic(3, 10, "boom".into(), None)
            .for_task(12, UNKNOWN_TOTAL)
            .to_string(),
        "task 12 panicked: boom"
    );
}

#[test]
fn config_errors_have_no_task() {
    let err = Error::invalid_config("workers", "0", "must be at least 1");
    assert!(err.is_invalid_config());
    assert_eq!(err.task_index(), None);
    assert_eq!(
        err.to_string(),
        "invalid workers = \"0\": must be at least 1"
    );
}

#[test]
fn os_errors_say_what_parpool_did_and_keep_the_os_error_as_the_source() {
    use std::error::Error as _;
    let io = std::io::Error::from_raw_os_error(11);
    let io_text = io.to_string();
    let err = Error::os("processes", "fork", io).context("for worker 2");
    assert_eq!(
        err.to_string(),
        "processes backend failed: fork failed for worker 2"
    );
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(err.is_backend());
    let source = err.source().expect("an io::Error");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(source.to_string(), io_text);
    assert!(Error::panic(1, 2, "x".into(), None).source().is_none());
}

#[test]
fn every_kind_has_its_question() {
    let cases = [
        (Error::panic(0, 1, "x".into(), None), ErrorKind::Panic),
        (Error::crash(0, 1, "exited"), ErrorKind::Crash),
        (
            Error::timeout(0, 1, Duration::from_secs(2), Duration::from_secs(1)),
            ErrorKind::Timeout,
        ),
        (
            Error::encoding(0, 1, Step::Encoded, "no"),
            ErrorKind::Encoding,
        ),
        (
            Error::invalid_config("workers", "0", "no"),
            ErrorKind::InvalidConfig,
        ),
        (Error::cancelled("all"), ErrorKind::Cancelled),
        (Error::backend("threads", "gone"), ErrorKind::Backend),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error}");
        let answers = [
            error.is_panic(),
            error.is_crash(),
            error.is_timeout(),
            error.is_encoding(),
            error.is_invalid_config(),
            error.is_cancelled(),
            error.is_backend(),
        ];
        assert_eq!(answers.iter().filter(|&&yes| yes).count(), 1, "{error}");
        assert!(format!("{error:?}").starts_with(&format!("Error({kind:?}: ")));
    }
}
