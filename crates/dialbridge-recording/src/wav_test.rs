use std::io::Write;

use super::*;

fn stereo(frames: &[(i16, i16)]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let data_len = u32::try_from(frames.len() * 4).unwrap();
    file.write_all(&header(2, data_len)).unwrap();
    for (agent, customer) in frames {
        file.write_all(&agent.to_le_bytes()).unwrap();
        file.write_all(&customer.to_le_bytes()).unwrap();
    }
    file
}

fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn each_side_and_the_mix_are_derived_whole_with_a_mono_header() {
    let file = stereo(&[(100, -5), (30_000, 30_000), (-30_000, -30_000)]);
    for (side, expected) in [
        (Side::Agent, vec![100, 30_000, -30_000]),
        (Side::Customer, vec![-5, 30_000, -30_000]),
        (Side::Mixed, vec![95, i16::MAX, i16::MIN]),
    ] {
        let view = MonoView::open(file.reopen().unwrap(), side).unwrap();
        assert_eq!(view.len(), 44 + 6);
        let whole = view.read(0, view.len()).unwrap();
        assert_eq!(&whole[..44], &header(1, 6));
        assert_eq!(samples(&whole[44..]), expected, "{side:?}");
    }
}

#[test]
fn any_byte_range_matches_the_same_bytes_of_the_whole() {
    let frames: Vec<(i16, i16)> = (0..50).map(|i| (i * 7, -i * 3)).collect();
    let file = stereo(&frames);
    let view = MonoView::open(file.reopen().unwrap(), Side::Mixed).unwrap();
    let whole = view.read(0, view.len()).unwrap();
    for start in 0..view.len() {
        for end in [start, start + 1, start + 3, start + 44, view.len(), view.len() + 10] {
            let part = view.read(start, end).unwrap();
            let end = end.min(view.len());
            assert_eq!(part, whole[start as usize..end.max(start) as usize], "{start}..{end}");
        }
    }
}

#[test]
fn a_file_whose_header_never_got_its_sizes_is_repaired_from_its_length() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&header(2, 0)).unwrap();
    file.write_all(&[1u8; 4 * 10 + 3]).unwrap();
    assert_eq!(read_stereo(file.as_file()).unwrap().frames, 0);
    assert_eq!(repair_stereo(file.as_file()).unwrap(), 10);
    assert_eq!(read_stereo(file.as_file()).unwrap().frames, 10);
    assert_eq!(
        file.as_file().metadata().unwrap().len(),
        44 + 40,
        "the torn frame is cut"
    );
}

#[test]
fn what_is_not_our_recording_is_refused() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&header(1, 0)).unwrap();
    assert!(MonoView::open(file.reopen().unwrap(), Side::Agent).is_err());
    let empty = tempfile::NamedTempFile::new().unwrap();
    assert!(MonoView::open(empty.reopen().unwrap(), Side::Agent).is_err());
}

#[test]
fn legacy_side_codes() {
    assert_eq!(Side::from_legacy("1"), Some(Side::Customer));
    assert_eq!(Side::from_legacy("2"), Some(Side::Agent));
    assert_eq!(Side::from_legacy("3"), Some(Side::Mixed));
    assert_eq!(Side::from_legacy("4"), None);
}
