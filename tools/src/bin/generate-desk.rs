//! Writes a demo desk: a database of tau2-bench's retail shape and a ticket queue, from a seed.
//!
//! ```text
//! cargo run -p tools --bin generate-desk -- --seed 7 --out tools/data
//! ```
//!
//! writes `demo-db.json` and `demo-tickets.json` into the `--out` directory and prints their
//! paths and sizes. The same seed always writes the same bytes; seed 7 is the committed demo.

use std::path::PathBuf;
use std::process::ExitCode;
use tools::generate::{DEMO_SEED, generate};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("generate-desk: {message}");
            eprintln!("usage: generate-desk [--seed N] --out DIR");
            ExitCode::FAILURE
        }
    }
}

fn run(arguments: Vec<String>) -> Result<(), String> {
    let mut seed = DEMO_SEED;
    let mut out: Option<PathBuf> = None;
    let mut arguments = arguments.into_iter();
    while let Some(flag) = arguments.next() {
        let mut value = || arguments.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--seed" => {
                let text = value()?;
                seed = text.parse().map_err(|_| format!("`{text}` is not a seed (a number)"))?;
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let out = out.ok_or("`--out DIR` is required")?;
    std::fs::create_dir_all(&out)
        .map_err(|error| format!("cannot create `{}`: {error}", out.display()))?;
    let desk = generate(seed);
    let files =
        [("demo-db.json", desk.database_json()), ("demo-tickets.json", desk.tickets_json())];
    for (name, text) in files {
        let text = text.map_err(|error| format!("cannot write {name}: {error}"))?;
        let path = out.join(name);
        std::fs::write(&path, &text)
            .map_err(|error| format!("cannot write `{}`: {error}", path.display()))?;
        println!("{} ({} bytes)", path.display(), text.len());
    }
    Ok(())
}
