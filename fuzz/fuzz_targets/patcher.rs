//! The patcher's inspect and plan path on arbitrary files: PE images (goblin, pelite and our
//! resource walker), IExpress self-extractors with their cabinet, bare CAB files and MSI
//! packages (the same `container::walk` the CLI and the GUI run before anything is written).
//! Both must return a result or an error for every input, never panic or hang.
//!
//! The patcher deliberately turns panics inside the `msi` crate into errors
//! (`container::msi::guarded`); libFuzzer's panic hook would abort on those before they are
//! caught, so this target installs a hook that prints every other panic and aborts itself
//! when a panic escapes the patcher.
#![no_main]

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use relive_patcher::Target;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            // Panics inside the msi crate are the ones the patcher catches; any other is
            // printed at once (a non-unwinding one aborts right after the hook).
            let in_msi = info.location().is_some_and(|l| l.file().contains("/msi-"));
            if !in_msi {
                eprintln!("{info}");
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    quiet_hook();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _ = relive_patcher::inspect(data);
        if let Ok(target) = Target::new("relive.example.net")
            && let Ok(plan) = relive_patcher::plan(data, &target)
        {
            // A plan is what `apply` would do; it must describe itself.
            let _ = plan.to_json();
        }
    }));
    if outcome.is_err() {
        LAST_PANIC.with(|p| eprintln!("panic escaped the patcher: {}", p.borrow()));
        std::process::abort();
    }
});
