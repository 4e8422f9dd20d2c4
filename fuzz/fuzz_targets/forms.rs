//! Form bodies as axum decodes them (`application/x-www-form-urlencoded`
//! through serde_urlencoded) into each form Gatehouse takes, then the
//! domain's checks on what was typed; never a panic.
#![no_main]

use gatehouse_core::reset::ResetInput;
use gatehouse_core::sign_in::SignInInput;
use gatehouse_domain::recovery::{RecoveryInput, check_recovery_form};
use gatehouse_domain::{AllowedDomains, EmailAddress, UsernameKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let today = jiff::civil::date(2026, 11, 29);
    if let Ok(input) = serde_urlencoded::from_bytes::<RecoveryInput>(data) {
        let _ = check_recovery_form(&input, today, &AllowedDomains::default());
        let _ = EmailAddress::parse(&input.email);
    }
    if let Ok(input) = serde_urlencoded::from_bytes::<SignInInput>(data) {
        let _ = UsernameKey::from_typed(&input.username);
        let _ = gatehouse_domain::password::normalise(&input.password);
    }
    let _ = serde_urlencoded::from_bytes::<ResetInput>(data);
});
