//! Opening a file as the desktop app does ([`relive_patcher::inspect_and_plan`]): every PE in
//! it is parsed once, and goblin has nothing to warn about. Counted through goblin's own log
//! records: it logs the headers it read (at debug level) once per parse.

use std::sync::{Mutex, Once};
use std::thread::ThreadId;

use relive_patcher::Target;

use crate::fixtures;

/// Every log record: the thread that logged it, its level, target and text.
static RECORDS: Mutex<Vec<(ThreadId, log::Level, String, String)>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        RECORDS.lock().unwrap().push((
            std::thread::current().id(),
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }

    fn flush(&self) {}
}

/// The records this thread logs while `run` runs (other tests log from their own threads).
fn records_of(run: impl FnOnce()) -> Vec<(log::Level, String, String)> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Recorder).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    let me = std::thread::current().id();
    RECORDS.lock().unwrap().retain(|(thread, ..)| *thread != me);
    run();
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, ..)| *thread == me)
        .map(|(_, level, target, text)| (*level, target.clone(), text.clone()))
        .collect()
}

#[test]
fn opening_parses_each_pe_once_and_quietly() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let target = Target::new("relive.test").unwrap();
    // (file, PEs in it): a client; a self-extractor and its client; an MSI's client; a
    // self-extractor, and the client inside the MSI inside it.
    for (path, pes) in [
        (&fx.client64_signed, 1),
        (&fx.client32, 1),
        (&fx.sfx, 2),
        (&fx.msi, 1),
        (&fx.sfx_msi, 2),
    ] {
        let data = std::fs::read(path).unwrap();
        let records = records_of(|| {
            let (inspection, plan) =
                relive_patcher::inspect_and_plan(&data, Some(&target)).unwrap();
            assert_eq!(inspection.files.len(), pes, "{}", path.display());
            assert!(!plan.unwrap().unwrap().is_noop());
        });
        let parses = records
            .iter()
            .filter(|(_, target, text)| target == "goblin::pe" && text.starts_with("Header {"))
            .count();
        assert_eq!(parses, pes, "{}: parsed {parses} times", path.display());
        let warnings: Vec<&String> = records
            .iter()
            .filter(|(level, ..)| *level <= log::Level::Warn)
            .map(|(_, _, text)| text)
            .collect();
        assert!(warnings.is_empty(), "{}: {warnings:?}", path.display());
    }
}
