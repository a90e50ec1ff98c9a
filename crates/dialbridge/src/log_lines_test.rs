use std::sync::{Arc, Mutex};

use super::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_value_with_a_newline_cannot_start_a_line() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(OneLinePerEvent::new(move || sink.clone(), false))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let forged = "1\n2026-12-05T00:00:00.000000Z  INFO dialbridge: forged\r\u{1b}[2J";
        tracing::info!(caller_id = %forged, "refused");
        tracing::info!("a second event");
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(r"caller_id=1\n2026-12-05T00:00:00.000000Z  INFO dialbridge: forged\r\x1b[2J"),
        "{text}"
    );
    assert!(lines[1].ends_with("a second event"), "{text}");
}
