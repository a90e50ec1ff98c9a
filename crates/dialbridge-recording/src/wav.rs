//! The one WAV shape dialbridge writes: the canonical 44-byte RIFF header over PCM 16-bit
//! little-endian at 8 kHz. Written by hand rather than with a WAV crate because crash safety
//! needs what those do not give: the header's sizes rewritten in place after every batch (so
//! a file being written is playable up to its last batch), the header of a file a crash left
//! open repaired from its length, and a byte range of a derived file (one side, or mixed)
//! computed without producing the whole file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const HEADER_LEN: u64 = 44;
pub const SAMPLE_RATE: u32 = 8000;

/// The header of a PCM 16-bit 8 kHz file of `channels` with `data_len` bytes of samples.
pub fn header(channels: u16, data_len: u32) -> [u8; HEADER_LEN as usize] {
    let block_align = channels * 2;
    let byte_rate = SAMPLE_RATE * u32::from(block_align);
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Rewrites the two size fields of a file's header (RIFF and data) for `data_len` bytes.
pub fn write_sizes(file: &File, data_len: u32) -> io::Result<()> {
    file.write_all_at(&data_len.saturating_add(36).to_le_bytes(), 4)?;
    file.write_all_at(&data_len.to_le_bytes(), 40)
}

/// What a stereo recording's header says, checked to be ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StereoFile {
    pub frames: u64,
}

/// Reads and checks the header of one of our stereo files; its frames are what both the
/// header and the file's length hold.
pub fn read_stereo(file: &File) -> io::Result<StereoFile> {
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0)?;
    if h != header(2, u32::from_le_bytes([h[40], h[41], h[42], h[43]])) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a dialbridge recording"));
    }
    let declared = u64::from(u32::from_le_bytes([h[40], h[41], h[42], h[43]]));
    let present = file.metadata()?.len().saturating_sub(HEADER_LEN);
    Ok(StereoFile {
        frames: declared.min(present) / 4,
    })
}

/// Repairs a stereo file a crash left open: a header that never got its sizes gets them from
/// the file's length, a torn last frame is cut. Returns the frames it holds.
pub fn repair_stereo(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len < HEADER_LEN {
        file.set_len(0)?;
        file.write_all_at(&header(2, 0), 0)?;
        return Ok(0);
    }
    let frames = (len - HEADER_LEN) / 4;
    let data_len = u32::try_from(frames * 4).unwrap_or(u32::MAX - 3);
    file.set_len(HEADER_LEN + u64::from(data_len))?;
    file.write_all_at(&header(2, data_len), 0)?;
    Ok(u64::from(data_len) / 4)
}

/// What a download gets of a stereo recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The customer's channel (legacy `recordSide=1`).
    Customer,
    /// The agent's channel (`recordSide=2`).
    Agent,
    /// Both mixed into one (`recordSide=3`, the default).
    Mixed,
}

impl Side {
    pub fn from_legacy(code: &str) -> Option<Side> {
        match code {
            "1" => Some(Side::Customer),
            "2" => Some(Side::Agent),
            "3" => Some(Side::Mixed),
            _ => None,
        }
    }

    fn sample(self, agent: i16, customer: i16) -> i16 {
        match self {
            Side::Customer => customer,
            Side::Agent => agent,
            Side::Mixed => {
                (i32::from(agent) + i32::from(customer)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
            }
        }
    }
}

/// A mono file derived from a stereo recording, read by byte ranges.
pub struct MonoView {
    file: File,
    frames: u64,
    side: Side,
}

impl MonoView {
    pub fn open(file: File, side: Side) -> io::Result<Self> {
        let StereoFile { frames } = read_stereo(&file)?;
        Ok(Self { file, frames, side })
    }

    /// The derived file's length in bytes.
    pub fn len(&self) -> u64 {
        HEADER_LEN + self.frames * 2
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Bytes `start..end` of the derived file (`end` past its length is cut).
    pub fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let end = end.min(self.len());
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        if start >= end {
            return Ok(out);
        }
        if start < HEADER_LEN {
            let data_len = u32::try_from(self.frames * 2).unwrap_or(u32::MAX);
            let h = header(1, data_len);
            out.extend_from_slice(&h[start as usize..end.min(HEADER_LEN) as usize]);
        }
        let data_start = start.max(HEADER_LEN) - HEADER_LEN;
        let data_end = end - HEADER_LEN.min(end);
        if data_start >= data_end {
            return Ok(out);
        }
        let first_frame = data_start / 2;
        let last_frame = (data_end - 1) / 2;
        let mut stereo = vec![0u8; usize::try_from((last_frame - first_frame + 1) * 4).unwrap_or(0)];
        self.file.read_exact_at(&mut stereo, HEADER_LEN + first_frame * 4)?;
        let mut mono = Vec::with_capacity(stereo.len() / 2);
        for frame in stereo.chunks_exact(4) {
            let agent = i16::from_le_bytes([frame[0], frame[1]]);
            let customer = i16::from_le_bytes([frame[2], frame[3]]);
            mono.extend_from_slice(&self.side.sample(agent, customer).to_le_bytes());
        }
        let skip = usize::try_from(data_start - first_frame * 2).unwrap_or(0);
        let take = usize::try_from(data_end - data_start).unwrap_or(0);
        out.extend_from_slice(&mono[skip..skip + take]);
        Ok(out)
    }
}

#[cfg(test)]
#[path = "wav_test.rs"]
mod tests;
