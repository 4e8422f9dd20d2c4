//! The staff file (`gatehouse import`, the console's upload): any bytes
//! either become rows and a plan, or a list of row errors; never a panic.
#![no_main]

use gatehouse_domain::AllowedDomains;
use gatehouse_domain::import::{plan_import, read_staff_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let today = jiff::civil::date(2026, 11, 29);
    if let Ok(rows) = read_staff_file(data, today, &AllowedDomains::default()) {
        let _ = plan_import(rows, &[], &[]);
    }
});
