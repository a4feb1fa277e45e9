//! The key directory is part of the trust boundary: a key planted there by another local user
//! would be loaded, published in `jwks.json` and signed with, and a per-call token the planter
//! forged with it would refund $500 through the tool server.
//!
//! Each test plants a real, loadable key and shows the ring refusing it for one reason (a
//! directory others can write or another user owns, a key file likewise, a key dated in the
//! future), then its positive control: the same planted key, with only that one thing put right,
//! is loaded, becomes the signing key and the forged refund token verifies. So each refusal is
//! the check's doing, not a broken fixture. The tests run as root (as here) or as any user who may
//! `chown` to `nobody`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::{AgentId, Scope, TaskId, canonical};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guards::credentials::{Issuer, KeyRing, TaskGrant, Verifier};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const ISSUER: &str = "warden";
const AUDIENCE: &str = "support-desk";
/// Another user: `nobody`.
const NOBODY: u32 = 65534;

/// Warden's audit dir (the trusted root) holding its key directory, with a first key made and
/// published, as the refund bot leaves it.
struct Scene {
    _temp: tempfile::TempDir,
    audit: PathBuf,
    keys: PathBuf,
    /// `jwks.json` as Warden published it, before anything was planted.
    published: String,
}

/// A local user's own key, copied into Warden's key directory, and the refund they forged with it.
struct Plant {
    _temp: tempfile::TempDir,
    kid: String,
    /// The planted file, in Warden's key directory.
    file: PathBuf,
    forged: String,
}

impl Scene {
    fn new() -> Self {
        Self::with_keys_at(&["keys"])
    }

    /// The key directory at `audit/<parts…>`.
    fn with_keys_at(parts: &[&str]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let audit = temp.path().join("audit");
        let keys = parts.iter().fold(audit.clone(), |path, part| path.join(part));
        KeyRing::open_within(&audit, &keys, now()).unwrap();
        let published = std::fs::read_to_string(keys.join("jwks.json")).unwrap();
        Self { _temp: temp, audit, keys, published }
    }

    /// What Warden does at start: open its keys, checked up to the audit dir.
    fn open(&self) -> Result<KeyRing, String> {
        KeyRing::open_within(&self.audit, &self.keys, now()).map_err(|error| error.to_string())
    }

    /// The attacker makes a key of their own dated `created` (with Warden's code, as they may),
    /// forges a $500 refund token with it, and drops the key file into the key directory.
    fn plant(&self, created: u64) -> Plant {
        let temp = tempfile::tempdir().unwrap();
        let own = temp.path().join("keys");
        let issuer = Issuer::new(ISSUER, KeyRing::open(&own, created).unwrap()).unwrap();
        let kid = only_key_id(&issuer.jwks());
        let task = issuer.mint_task(&refund_grant()).unwrap();
        let forged = issuer
            .mint_call(
                &task,
                AUDIENCE,
                "issue_refund",
                &Scope::new("refunds:write").unwrap(),
                &canonical::digest(&refund()),
            )
            .unwrap();
        let file = self.keys.join(format!("{kid}.key.json"));
        std::fs::copy(own.join(format!("{kid}.key.json")), &file).unwrap();
        assert_eq!(mode(&file), "0600", "the planted file itself is private");
        Plant { _temp: temp, kid, file, forged: forged.expose().to_owned() }
    }

    /// What the tool server says to `token` for the refund, trusting the published `jwks.json`.
    fn tool_server(&self, token: &str) -> &'static str {
        let verifier = Verifier::from_jwks_file(ISSUER, &self.keys.join("jwks.json")).unwrap();
        match verifier.verify_call(token, AUDIENCE, "issue_refund", &refund()) {
            Ok(_) => "accepted",
            Err(rejection) => rejection.code(),
        }
    }

    /// The refusal left everything as it was: the planted key is not published, and the forged
    /// token fails at the tool server.
    fn assert_nothing_published(&self, plant: &Plant) {
        let jwks = std::fs::read_to_string(self.keys.join("jwks.json")).unwrap();
        assert_eq!(jwks, self.published);
        assert!(!jwks.contains(&plant.kid));
        assert_eq!(self.tool_server(&plant.forged), "unknown_key");
    }

    /// The positive control: the ring opens, publishes the planted key, signs with it (it is the
    /// newest), and the tool server accepts the forged refund.
    fn assert_planted_key_wins(&self, plant: &Plant) {
        let ring = self.open().unwrap();
        let jwks = ring.jwks();
        let ids: Vec<&str> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(ids.contains(&plant.kid.as_str()), "{ids:?}");
        let issuer = Issuer::new(ISSUER, ring).unwrap();
        let signed = issuer.mint_task(&refund_grant()).unwrap();
        assert_eq!(header(signed.expose())["kid"], plant.kid, "the planted key signs");
        assert!(std::fs::read_to_string(self.keys.join("jwks.json")).unwrap().contains(&plant.kid));
        assert_eq!(self.tool_server(&plant.forged), "accepted");
    }
}

#[test]
fn a_key_planted_in_a_key_directory_others_can_write_is_refused() {
    for unsafe_mode in [0o777, 0o770, 0o703, 0o1777] {
        let scene = Scene::new();
        chmod(&scene.keys, unsafe_mode);
        // Dated a minute ahead (within the leeway): it would be the newest key.
        let plant = scene.plant(now() + 60);

        let error = scene.open().err().unwrap();
        let keys = scene.keys.canonicalize().unwrap().display().to_string();
        assert!(
            error.starts_with(&format!("key directory `{keys}` is writable by group or others"))
                && error.contains(&format!("(mode {unsafe_mode:04o})"))
                && error.contains(&format!("run `chmod go-w {keys}`")),
            "{error}"
        );
        scene.assert_nothing_published(&plant);

        // Positive control: the same planted key, the directory made private, wins.
        chmod(&scene.keys, 0o700);
        scene.assert_planted_key_wins(&plant);
    }
}

#[test]
fn a_key_planted_below_a_directory_others_can_write_is_refused() {
    // The audit dir itself, and a directory between it and the keys.
    for unsafe_part in ["", "runs"] {
        let scene = Scene::with_keys_at(&["runs", "keys"]);
        let weak = scene.audit.join(unsafe_part);
        chmod(&weak, 0o777);
        let plant = scene.plant(now() + 60);

        let error = scene.open().err().unwrap();
        let weak = weak.canonicalize().unwrap().display().to_string();
        assert!(
            error.starts_with(&format!(
                "directory above the key directory `{weak}` is writable by group or others \
                 (mode 0777)"
            )),
            "{error}"
        );
        scene.assert_nothing_published(&plant);

        chmod(Path::new(&weak), 0o700);
        scene.assert_planted_key_wins(&plant);
    }
}

#[test]
fn a_key_directory_owned_by_another_user_is_refused() {
    let scene = Scene::new();
    let plant = scene.plant(now() + 60);
    chown(&scene.keys, NOBODY);

    let error = scene.open().err().unwrap();
    let keys = scene.keys.canonicalize().unwrap().display().to_string();
    assert!(
        error.starts_with(&format!("key directory `{keys}` is owned by uid {NOBODY}")),
        "{error}"
    );
    scene.assert_nothing_published(&plant);

    chown(&scene.keys, euid());
    scene.assert_planted_key_wins(&plant);
}

#[test]
fn a_key_directory_inside_an_audit_dir_owned_by_another_user_is_refused() {
    let scene = Scene::new();
    let plant = scene.plant(now() + 60);
    chown(&scene.audit, NOBODY);

    let error = scene.open().err().unwrap();
    let audit = scene.audit.canonicalize().unwrap().display().to_string();
    assert!(
        error.starts_with(&format!(
            "directory above the key directory `{audit}` is owned by uid {NOBODY}"
        )),
        "{error}"
    );
    scene.assert_nothing_published(&plant);

    chown(&scene.audit, euid());
    scene.assert_planted_key_wins(&plant);
}

#[test]
fn a_planted_key_file_others_can_write_is_refused() {
    for unsafe_mode in [0o666, 0o620, 0o602] {
        let scene = Scene::new();
        let plant = scene.plant(now() + 60);
        chmod(&plant.file, unsafe_mode);

        let error = scene.open().err().unwrap();
        assert!(
            error.contains(&plant.file.display().to_string())
                && error.contains(&format!("has mode {unsafe_mode:o}")),
            "{error}"
        );
        scene.assert_nothing_published(&plant);

        chmod(&plant.file, 0o600);
        scene.assert_planted_key_wins(&plant);
    }
}

#[test]
fn a_planted_key_file_owned_by_another_user_is_refused() {
    // The attack as it happens: the planter owns the file they wrote.
    let scene = Scene::new();
    let plant = scene.plant(now() + 60);
    chown(&plant.file, NOBODY);

    let error = scene.open().err().unwrap();
    assert!(
        error.starts_with(&format!(
            "key file `{}` is owned by uid {NOBODY}, not by this process's uid {}",
            plant.file.display(),
            euid()
        )),
        "{error}"
    );
    scene.assert_nothing_published(&plant);

    chown(&plant.file, euid());
    scene.assert_planted_key_wins(&plant);
}

#[test]
fn a_key_dated_in_the_future_is_refused_instead_of_becoming_the_signing_key() {
    let scene = Scene::new();
    let now = now();
    // Every mode and owner is right: only the date is wrong.
    let plant = scene.plant(now + 86_400);
    let error = KeyRing::open_within(&scene.audit, &scene.keys, now).err().unwrap().to_string();
    assert!(
        error.starts_with(&format!("key file `{}` says it was created at", plant.file.display()))
            && error.contains("more than five minutes after now"),
        "{error}"
    );
    scene.assert_nothing_published(&plant);

    // Just past the leeway is still refused; at its edge the key loads.
    redate(&plant.file, now + 301);
    assert!(KeyRing::open_within(&scene.audit, &scene.keys, now).is_err());
    assert!(std::fs::read_to_string(scene.keys.join("jwks.json")).unwrap() == scene.published);
    redate(&plant.file, now + 300);
    assert!(KeyRing::open_within(&scene.audit, &scene.keys, now).is_ok());

    // Positive control: the same key dated a minute ahead loads and wins as the newest.
    redate(&plant.file, now + 60);
    scene.assert_planted_key_wins(&plant);
}

#[test]
fn directories_above_the_trusted_root_are_not_checked() {
    // Like `/tmp`: world-writable and sticky. Above the root it is not looked at; inside the root
    // it would be refused like any other directory others can write.
    let temp = tempfile::tempdir().unwrap();
    let shared = temp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let audit = shared.join("audit");
    let keys = audit.join("keys");
    KeyRing::open_within(&audit, &keys, now()).unwrap();
    assert_eq!(mode(&audit), "0700");

    let error = KeyRing::open_within(&shared, &keys, now()).err().unwrap().to_string();
    assert!(error.contains("is writable by group or others (mode 1777)"), "{error}");
}

#[test]
fn a_key_directory_that_leads_out_of_the_trusted_root_is_refused() {
    // The key directory is a symbolic link to a directory of the attacker's choosing: the checks
    // follow it and see that the keys are not inside the audit dir at all.
    let scene = Scene::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let theirs = elsewhere.path().join("keys");
    KeyRing::open(&theirs, now()).unwrap();
    let link = scene.audit.join("linked-keys");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();

    let error = KeyRing::open_within(&scene.audit, &link, now()).err().unwrap().to_string();
    assert!(error.contains("is not inside") && error.contains("the directory it is checked up to"));

    // Positive control: a link that stays inside the root is followed and accepted.
    let inside = scene.audit.join("keys-link");
    std::os::unix::fs::symlink(&scene.keys, &inside).unwrap();
    assert!(KeyRing::open_within(&scene.audit, &inside, now()).is_ok());
}

#[test]
fn what_the_ring_creates_is_private_whatever_the_umask() {
    // The umask is the process's: the ring's own files are checked in a child started with
    // umask 000, so no other test here runs under it.
    let child = "under_umask_000_the_ring_creates_only_private_directories_and_files";
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" --exact "$1" --include-ignored --test-threads 1"#)
        .arg(std::env::current_exe().unwrap())
        .arg(child)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "run under umask 000 by `what_the_ring_creates_is_private_whatever_the_umask`"]
fn under_umask_000_the_ring_creates_only_private_directories_and_files() {
    let temp = tempfile::tempdir().unwrap();
    // Positive control: the umask really is permissive, and the checks refuse what it lets
    // through, so without explicit modes the ring would refuse its own directory.
    let careless = temp.path().join("careless");
    std::fs::create_dir(&careless).unwrap();
    assert_eq!(mode(&careless), "0777", "this test must run under umask 000");
    assert!(KeyRing::open(&careless, now()).is_err());

    let audit = temp.path().join("audit");
    let keys = audit.join("runs").join("keys");
    let mut ring = KeyRing::open_within(&audit, &keys, now()).unwrap();
    ring.rotate(now()).unwrap();
    for directory in [&audit, &audit.join("runs"), &keys] {
        assert_eq!(mode(directory), "0700", "{}", directory.display());
    }
    let files: Vec<PathBuf> =
        std::fs::read_dir(&keys).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(files.len(), 5, "two keys, jwks.json, audit-jwks.json and the lock: {files:?}");
    for file in &files {
        assert_eq!(mode(file), "0600", "{}", file.display());
    }
    // And the ring opens what it made.
    assert_eq!(
        KeyRing::open_within(&audit, &keys, now()).unwrap().jwks()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// --- helpers ---

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The permission bits of `path`, in octal as `chmod` takes them (`"0700"`).
fn mode(path: &Path) -> String {
    format!("{:04o}", std::fs::metadata(path).unwrap().permissions().mode() & 0o7777)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

/// Rewrites the creation time a key file records.
fn redate(file: &Path, created: u64) {
    let mut stored: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    stored["created"] = json!(created);
    std::fs::write(file, stored.to_string()).unwrap();
}

fn only_key_id(jwks: &Value) -> String {
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    keys[0]["kid"].as_str().unwrap().to_owned()
}

fn header(token: &str) -> Value {
    let encoded = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

fn refund_grant() -> TaskGrant {
    TaskGrant {
        agent: AgentId::new("refund-bot"),
        task: TaskId::new("T-1001"),
        audience: vec![AUDIENCE.to_owned()],
        scopes: vec![Scope::new("refunds:write").unwrap()],
        on_behalf_of: Some("noah_brown_6181".to_owned()),
        lifetime: None,
    }
}

fn refund() -> Value {
    json!({"order_id": "#W2378156", "amount": 500, "reason": "damaged"})
}
