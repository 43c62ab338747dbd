//! A value read off the UI thread: a screen starts the read on a named thread of its own and
//! polls for it while drawing, so no frame waits on a disk.
use crossbeam_channel::{Receiver, TryRecvError};

pub enum Loading<T> {
    Pending(Receiver<T>),
    Ready(T),
    /// The thread could not start or ended without an answer (it panicked).
    Lost,
}

impl<T: Send + 'static> Loading<T> {
    /// Runs `read` on a thread named `thread`.
    pub fn spawn(thread: &str, read: impl FnOnce() -> T + Send + 'static) -> Self {
        Self::spawn_then(thread, read, || {})
    }

    /// [`Loading::spawn`], calling `then` once the value can be polled (to wake the UI when
    /// nothing else would: a file dialog's answer).
    pub fn spawn_then(
        thread: &str,
        read: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce() + Send + 'static,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                let _ = tx.send(read());
                then();
            });
        match spawned {
            Ok(_) => Loading::Pending(rx),
            Err(_) => Loading::Lost,
        }
    }

    /// The value once it came (taken from the thread on the first call that finds it).
    pub fn poll(&mut self) -> Option<&T> {
        if let Loading::Pending(rx) = self {
            match rx.try_recv() {
                Ok(value) => *self = Loading::Ready(value),
                Err(TryRecvError::Disconnected) => *self = Loading::Lost,
                Err(TryRecvError::Empty) => {}
            }
        }
        match self {
            Loading::Ready(value) => Some(value),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn is_ready(&self) -> bool {
        matches!(self, Loading::Ready(_))
    }

    /// Draws a spinner (and asks for the next frame) while the value is on its way, or says
    /// that it was lost; true when it is ready.
    pub fn wait_ui(&mut self, ui: &mut egui::Ui, what: &str) -> bool {
        if self.poll().is_some() {
            return true;
        }
        match self {
            Loading::Lost => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("Could not read {what} (its thread stopped); see the log."),
                );
            }
            _ => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("Reading {what}…"));
                });
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(100));
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_on_its_thread_arrives_and_a_panicked_read_is_lost_not_waited_for() {
        let mut v = Loading::spawn("test-read", || 7);
        let start = std::time::Instant::now();
        while v.poll().is_none() {
            assert!(start.elapsed().as_secs() < 10);
            std::thread::yield_now();
        }
        assert_eq!(v.poll(), Some(&7));
        let mut lost: Loading<i32> = Loading::spawn("test-panic", || panic!("injected"));
        while !matches!(lost, Loading::Lost) {
            assert!(start.elapsed().as_secs() < 10);
            assert_eq!(lost.poll(), None);
        }
    }
}
