//! G.711 µ-law and A-law (ITU-T G.711): tables to convert between the two laws and a tone
//! generator for ringback. Written out because it is a few lines of table arithmetic.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, RTP payload type 0.
    Mu,
    /// PCMA, RTP payload type 8.
    A,
}

impl Law {
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    pub fn other(self) -> Law {
        match self {
            Law::Mu => Law::A,
            Law::A => Law::Mu,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => ulaw_to_linear(byte),
            Law::A => alaw_to_linear(byte),
        }
    }
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let segment_ends = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let Some(segment) = segment_ends.iter().position(|end| pcm <= *end) else {
        return (0x7F ^ mask) as u8;
    };
    let segment = segment as i32;
    let shift = if segment < 2 { 1 } else { segment };
    (((segment << 4) | ((pcm >> shift) & 0x0F)) ^ mask) as u8
}

pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// Converts a payload byte of one law to the other.
pub fn transcode(from: Law, byte: u8) -> u8 {
    static MU_TO_A: OnceLock<[u8; 256]> = OnceLock::new();
    static A_TO_MU: OnceLock<[u8; 256]> = OnceLock::new();
    let table = |from: Law| {
        let mut t = [0u8; 256];
        for (i, out) in t.iter_mut().enumerate() {
            *out = from.other().encode(from.decode(i as u8));
        }
        t
    };
    match from {
        Law::Mu => MU_TO_A.get_or_init(|| table(Law::Mu))[usize::from(byte)],
        Law::A => A_TO_MU.get_or_init(|| table(Law::A))[usize::from(byte)],
    }
}

#[cfg(test)]
#[path = "g711_test.rs"]
mod tests;
