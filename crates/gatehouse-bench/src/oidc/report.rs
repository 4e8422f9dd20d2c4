//! The tables BENCHMARKS.md quotes.

use std::time::Duration;

use super::measures::{Figure, Figures};
use super::signing::Signing;

pub(super) fn ok(status: u16) -> bool {
    status == 200
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A rate with thousands separated by commas, as BENCHMARKS.md writes them.
pub(super) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One of a provider's figures.
pub(super) type Pick = fn(&Figures) -> &Figure;

pub(super) fn print_tables(
    ours: &Figures,
    es256: &Figure,
    peer: Option<&(Figures, Figure)>,
    signing: &Signing,
) {
    println!();
    println!("| measure | Gatehouse | django-oauth-toolkit | Gatehouse / peer | target |");
    println!("| --- | --- | --- | --- | --- |");
    let rows: [(&str, Pick, &str); 4] = [
        (
            "refresh-token grants (each rotates the token)",
            |f| &f.refresh,
            ">= 20",
        ),
        ("userinfo requests", |f| &f.userinfo, ">= 20"),
        ("JWKS requests", |f| &f.jwks, ""),
        (
            "whole code flows of a signed-in person (authorize, token with PKCE, userinfo)",
            |f| &f.flows,
            "",
        ),
    ];
    for (name, pick, target) in rows {
        let g = pick(ours);
        let (cell, ratio) = match peer {
            Some((theirs, _)) => {
                let d = pick(theirs);
                (
                    d.cell(),
                    format!("**{:.1}**", g.rate() / d.rate().max(1e-9)),
                )
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!("| {name} | {} | {cell} | {ratio} | {target} |", g.cell());
    }
    println!(
        "| refresh-token grants, a client with ES256 ID tokens | {} | | | |",
        es256.cell()
    );
    if let Some((theirs, slow)) = peer {
        println!(
            "| refresh-token grants, the peer's client secret stored as it stores one by default (argon2id) | {} | {} | {:.1} | |",
            ours.refresh.cell(),
            slow.cell(),
            ours.refresh.rate() / slow.rate().max(1e-9)
        );
        let cpu = |f: Pick| format!("{:.2} / {:.2}", f(ours).server_ms(), f(theirs).server_ms());
        println!(
            "| server CPU per operation, ms, Gatehouse / peer: refresh; userinfo; JWKS; whole flow | {} ; {} ; {} ; {} | | | |",
            cpu(|f| &f.refresh),
            cpu(|f| &f.userinfo),
            cpu(|f| &f.jwks),
            cpu(|f| &f.flows),
        );
    }
    println!(
        "| load generator CPU per operation against Gatehouse, ms: refresh; userinfo; JWKS; whole flow | {:.2} ; {:.2} ; {:.2} ; {:.2} | | | |",
        ours.refresh.own_ms(),
        ours.userinfo.own_ms(),
        ours.jwks.own_ms(),
        ours.flows.own_ms(),
    );

    // Signing against what a grant costs the server, per core.
    let us = |rate: f64| 1e6 / rate.max(1e-9);
    let per_core = |f: &Figure| f.done() / f.server_cpu.max(1e-9);
    println!();
    println!("| ID-token signing, one core | per token | per second |");
    println!("| --- | --- | --- |");
    for (name, r) in [
        ("RS256, ring alone (the raw rate)", signing.ring_rs256),
        (
            "RS256, the service's signing step (claims to JSON, base64url, ring)",
            signing.service_rs256,
        ),
        ("ES256, ring alone", signing.ring_es256),
        ("ES256, the service's signing step", signing.service_es256),
    ] {
        println!("| {name} | {:.0} µs | {} |", us(r), thousands(r));
    }
    for (name, f, alg, sign_rate) in [
        (
            "Gatehouse, per refresh grant (one ID token each): server CPU",
            &ours.refresh,
            "RS256",
            signing.service_rs256,
        ),
        (
            "Gatehouse, per refresh grant, ES256 client: server CPU",
            es256,
            "ES256",
            signing.service_es256,
        ),
        (
            "Gatehouse, per whole code flow (one ID token each): server CPU",
            &ours.flows,
            "RS256",
            signing.service_rs256,
        ),
    ] {
        let share = us(sign_rate) / (1000.0 * f.server_ms()).max(1e-9);
        println!(
            "| {name} | {:.0} µs, of which {alg} signing {:.0}% | {} per core-second; signing alone would allow {:.1}× that |",
            1000.0 * f.server_ms(),
            100.0 * share,
            thousands(per_core(f)),
            sign_rate / per_core(f).max(1e-9),
        );
    }
}
