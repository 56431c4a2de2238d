//! The reducer and the real worker thread together, on fixture files in a temp dir: what a
//! first-time user does, click by click, without a window.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use relive_gui::state::{Action, Load, Operation, Settings, UiState};
use relive_gui::worker::{Job, Worker, WorkerEvent};
use relive_patcher::{Progress, Target, backup_path};

use crate::fixture;

/// Sends `jobs` and folds events in until nothing runs. Returns the progress reports seen.
fn settle(state: &mut UiState, worker: &Worker, jobs: Vec<Job>) -> Vec<Progress> {
    let mut progress = Vec::new();
    for job in jobs {
        worker.send(job);
    }
    while !state.is_idle() {
        let event = worker.recv().expect("the worker stopped");
        if let WorkerEvent::Progress(p) = &event {
            progress.push(p.clone());
        }
        for job in state.on_event(event) {
            worker.send(job);
        }
    }
    progress
}

fn spawn() -> (Worker, Arc<AtomicUsize>) {
    let wakeups = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakeups);
    let worker = Worker::spawn(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    (worker, wakeups)
}

/// A window state whose server is `relive.test`, with `settings` otherwise.
fn relive_test_state(settings: Settings) -> UiState {
    UiState::new(
        Settings {
            server: "relive.test".into(),
            ..settings
        },
        false,
    )
}

#[test]
fn first_time_user_patches_and_restores_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture::client();
    let path = fixture::write(dir.path(), "msnmsgr.exe", &original);
    let (worker, wakeups) = spawn();
    let mut state = UiState::new(Settings::default(), false);

    // Click 1: open the file. Then type the server, one keystroke at a time.
    let jobs = state.apply(Action::Open(path.clone()));
    settle(&mut state, &worker, jobs);
    for end in 1..="relive.test".len() {
        let jobs = state.apply(Action::SetServer("relive.test"[..end].into()));
        for job in jobs {
            worker.send(job);
        }
    }
    settle(&mut state, &worker, Vec::new());
    let plan = state.plan.ready().expect("a plan").clone();
    assert_eq!(plan.target.host, "relive.test");
    assert!(!plan.is_noop());
    assert!(state.can_patch());

    // Click 2: patch.
    let jobs = state.apply(Action::Patch);
    let progress = settle(&mut state, &worker, jobs);
    assert!(!progress.is_empty(), "progress is reported");
    let Operation::Patched(done) = &state.operation else {
        panic!("{:?}", state.operation)
    };
    assert!(done.changed);
    assert_eq!(done.backup.as_deref(), Some(backup_path(&path).as_path()));
    let reg = done
        .registry_file
        .clone()
        .expect("MSN 6 needs a registry change");
    assert!(
        std::fs::read_to_string(reg)
            .unwrap()
            .starts_with("REGEDIT4")
    );

    // On disk: the file points at the server, the backup is the original.
    let patched = std::fs::read(&path).unwrap();
    let target = Target::new("relive.test").unwrap();
    assert!(relive_patcher::plan(&patched, &target).unwrap().is_noop());
    assert_eq!(std::fs::read(backup_path(&path)).unwrap(), original);
    // The window now says so, and offers to restore.
    assert!(state.plan.ready().unwrap().is_noop());
    assert!(!state.can_patch());
    assert!(state.can_restore());

    // Click 3: restore.
    let jobs = state.apply(Action::Restore);
    settle(&mut state, &worker, jobs);
    assert!(matches!(state.operation, Operation::Restored { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), original);
    assert!(!backup_path(&path).exists());
    assert!(state.can_patch());
    assert!(!state.can_restore());
    // The worker wakes the window after each event (it sends, then notifies, so only the
    // events before the last one received are sure to have been counted).
    assert!(wakeups.load(Ordering::Relaxed) >= 4, "the window is woken");
}

#[test]
fn installer_patch_reports_progress_and_skips_the_reg_file_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture::write(dir.path(), "setup.exe", &fixture::installer());
    let (worker, _) = spawn();
    let mut state = relive_test_state(Settings {
        registry_file: false,
        ..Settings::default()
    });
    let jobs = state.apply(Action::Open(path.clone()));
    settle(&mut state, &worker, jobs);
    let found = state.file.as_ref().unwrap().inspection.ready().unwrap();
    assert_eq!(found.inspection.members.len(), 1);
    let jobs = state.apply(Action::Patch);
    let progress = settle(&mut state, &worker, jobs);
    let stages: Vec<String> = progress.iter().map(|p| p.stage.to_string()).collect();
    assert!(stages.contains(&"repacking".to_string()), "{stages:?}");
    assert!(stages.contains(&"writing".to_string()), "{stages:?}");
    let Operation::Patched(done) = &state.operation else {
        panic!("{:?}", state.operation)
    };
    assert_eq!(done.registry_file, None);
    assert!(!done.registry_changes.is_empty(), "still shown in words");
    let target = Target::new("relive.test").unwrap();
    assert!(
        relive_patcher::plan(&std::fs::read(&path).unwrap(), &target)
            .unwrap()
            .is_noop()
    );
}

#[test]
fn a_file_that_is_not_a_client_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture::write(dir.path(), "readme.txt", b"not a program");
    let (worker, _) = spawn();
    let mut state = relive_test_state(Settings::default());
    let jobs = state.apply(Action::Open(path));
    settle(&mut state, &worker, jobs);
    let Load::Failed(problem) = &state.file.as_ref().unwrap().inspection else {
        panic!("{state:?}")
    };
    assert_eq!(
        problem.title,
        "This is not an MSN Messenger program or setup."
    );
    assert!(!state.can_patch());

    let jobs = state.apply(Action::Open(dir.path().join("missing.exe")));
    settle(&mut state, &worker, jobs);
    let Load::Failed(problem) = &state.file.as_ref().unwrap().inspection else {
        panic!("{state:?}")
    };
    assert_eq!(problem.title, "A file could not be read or written.");
}

#[test]
fn a_changed_file_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture::write(dir.path(), "msnmsgr.exe", &fixture::client());
    let (worker, _) = spawn();
    let mut state = relive_test_state(Settings::default());
    let jobs = state.apply(Action::Open(path.clone()));
    settle(&mut state, &worker, jobs);
    // Someone replaces the file after the plan was shown.
    std::fs::write(&path, b"MZ changed").unwrap();
    let jobs = state.apply(Action::Patch);
    settle(&mut state, &worker, jobs);
    assert!(matches!(state.operation, Operation::Failed(_)), "{state:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"MZ changed");
    assert!(!backup_path(&path).exists());
}

#[test]
fn ca_certificate_is_read_and_fingerprinted() {
    let dir = tempfile::tempdir().unwrap();
    let der = [0x30, 0x03, 0x02, 0x01, 0x01];
    let path = fixture::write(dir.path(), "relive-ca.crt", &der);
    let (worker, _) = spawn();
    let mut state = UiState::new(Settings::default(), false);
    let jobs = state.apply(Action::OpenCa(path));
    settle(&mut state, &worker, jobs);
    let ca = state.trust.ca.ready().expect("read");
    assert_eq!(ca.sha256, relive_gui::trust::fingerprint(&der));
}
