use super::*;

#[test]
fn sealing_round_trips_and_detects_tampering() {
    let key = SecretKey::from_hex(&"11".repeat(32)).unwrap();
    let sealer = Sealer::new(&key);
    let sealed = sealer.seal("sip-secret");
    assert!(!sealed.contains("sip-secret"));
    assert_ne!(sealed, sealer.seal("sip-secret"), "a fresh nonce every time");
    assert_eq!(sealer.open(&sealed).unwrap(), "sip-secret");
    let mut tampered = sealed.into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    assert!(sealer.open(&String::from_utf8(tampered).unwrap()).is_err());
    let other = Sealer::new(&SecretKey::from_hex(&"22".repeat(32)).unwrap());
    assert!(other.open(&sealer.seal("x")).is_err());
}

#[test]
fn key_file_is_created_once_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let first = SecretKey::load_or_create(dir.path()).unwrap();
    let second = SecretKey::load_or_create(dir.path()).unwrap();
    assert_eq!(first.bytes(), second.bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fs::write(dir.path().join(KEY_FILE), "not hex").unwrap();
    assert!(matches!(
        SecretKey::load_or_create(dir.path()),
        Err(StoreError::BadSecretKey)
    ));
}

#[test]
fn password_hashes_verify_only_the_right_secret() {
    let hashing = PasswordHashing::new(PasswordHashCost {
        memory_kib: 64,
        iterations: 1,
    })
    .unwrap();
    let pwd = md5_hex("1234");
    let stored = hashing.hash(&pwd).unwrap();
    assert!(stored.starts_with("$argon2id$"));
    assert!(hashing.verify(&pwd, &stored));
    assert!(!hashing.verify(&md5_hex("12345"), &stored));
    assert!(!hashing.verify(&pwd, "garbage"));
}

#[test]
fn md5_is_lowercase_hex() {
    assert_eq!(md5_hex("1234"), "81dc9bdb52d04dc20036dbd8313ed055");
}

#[test]
fn bad_cost_is_refused() {
    assert!(PasswordHashing::new(PasswordHashCost {
        memory_kib: 1,
        iterations: 0
    })
    .is_err());
}
