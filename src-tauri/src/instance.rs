//! One Confer per user (per config directory): a second launch, say from a `confer://` link
//! clicked in a browser or a mail, hands its link to the running app, which shows its window
//! and offers the link, and then exits. Two windows on one camera and one microphone would
//! only fight over them.
//!
//! The running app listens on a Unix socket in its config directory (`instance.sock`, mode
//! 0600: only this user can reach it). A launch first tries to connect: if something answers, it sends
//! one line (`open <link>` or `show`), waits for `ok`, and is done; if nothing answers (no
//! socket, or one left behind by a crash), it takes the place. Tauri's single-instance plugin
//! does this over D-Bus on Linux, which headless sessions (Xvfb, CI) and some minimal desktops
//! do not run; a socket in the directory that already separates users and profiles needs
//! nothing.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a launch found.
#[derive(Debug)]
pub(crate) enum Instance {
    /// This is the only one: serve the others with [`Claimed::serve`].
    First(Claimed),
    /// Another was running and took the link.
    Forwarded,
}

/// The socket this app answers other launches on.
#[derive(Debug)]
pub(crate) struct Claimed {
    listener: UnixListener,
    path: PathBuf,
}

/// What another launch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Show the window.
    Show,
    /// Show the window and offer this link.
    Open(String),
}

const SOCKET: &str = "instance.sock";

/// The config directory Tauri gives this app on Linux (`$XDG_CONFIG_HOME/<identifier>`), where
/// the settings and the socket live.
pub(crate) fn config_dir(identifier: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join(identifier))
}

/// Finds the running app in `dir` and hands it `link`, or becomes the running app.
pub(crate) fn claim(dir: &Path, link: Option<&str>) -> io::Result<Instance> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SOCKET);
    // Twice: a launch racing this one may take the place between our connect and bind.
    for _ in 0..2 {
        if forward(&path, link).is_ok() {
            return Ok(Instance::Forwarded);
        }
        // Nobody answers: a socket file left by a crash, or none.
        let _ = std::fs::remove_file(&path);
        match UnixListener::bind(&path) {
            Ok(listener) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                return Ok(Instance::First(Claimed { listener, path }));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} is taken but does not answer",
        path.display()
    )))
}

fn forward(path: &Path, link: Option<&str>) -> io::Result<()> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let line = match link {
        // A link is one line; anything after a line break is not part of it.
        Some(link) => format!("open {}\n", link.lines().next().unwrap_or_default()),
        None => "show\n".to_owned(),
    };
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.trim_end() == "ok" {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the running Confer answered {answer:?}"
        )))
    }
}

impl Request {
    fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "show" {
            return Some(Self::Show);
        }
        line.strip_prefix("open ")
            .filter(|link| !link.is_empty() && link.len() <= 4096)
            .map(|link| Self::Open(link.to_owned()))
    }
}

impl Claimed {
    /// Answers other launches on a thread of its own, handing each request to `on_request`.
    pub(crate) fn serve(self, on_request: impl Fn(Request) + Send + 'static) {
        let spawned = std::thread::Builder::new()
            .name("confer-instance".into())
            .spawn(move || {
                for stream in self.listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                    let mut line = String::new();
                    let mut reader = BufReader::new(&stream);
                    let answer = match reader
                        .read_line(&mut line)
                        .ok()
                        .and_then(|_| Request::parse(&line))
                    {
                        Some(request) => {
                            on_request(request);
                            "ok\n"
                        }
                        None => "error: not a request\n",
                    };
                    let _ = (&stream).write_all(answer.as_bytes());
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot answer other launches: {e}");
        }
    }

    /// The socket's path.
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("confer-instance-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_launch_hands_its_link_to_the_first_and_stops() {
        let dir = dir("handoff");
        let Instance::First(first) = claim(&dir, None).expect("claim") else {
            panic!("nobody was running");
        };
        let path = first.path().to_owned();
        let (tx, rx) = mpsc::channel();
        first.serve(move |request| tx.send(request).expect("test listening"));

        let link = "confer+http://10.0.0.2:8443/join/room#token";
        assert!(matches!(
            claim(&dir, Some(link)).expect("claim"),
            Instance::Forwarded
        ));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(3)).expect("request"),
            Request::Open(link.into())
        );
        assert!(matches!(
            claim(&dir, None).expect("claim"),
            Instance::Forwarded
        ));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(3)).expect("request"),
            Request::Show
        );
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_left_by_a_crash_is_taken_over() {
        let dir = dir("stale");
        std::fs::create_dir_all(&dir).unwrap();
        // A socket nobody listens on any more.
        drop(UnixListener::bind(dir.join(SOCKET)).unwrap());
        assert!(dir.join(SOCKET).exists());
        let claimed = claim(&dir, Some("confer://x/join/r#t")).expect("claim");
        assert!(matches!(claimed, Instance::First(_)));
        drop(claimed);
        assert!(!dir.join(SOCKET).exists(), "removed when the app exits");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn requests_are_one_line_each() {
        assert_eq!(Request::parse("show\n"), Some(Request::Show));
        assert_eq!(
            Request::parse("open confer://h/join/r#t\r\n"),
            Some(Request::Open("confer://h/join/r#t".into()))
        );
        assert_eq!(Request::parse("open \n"), None);
        assert_eq!(Request::parse("rm -rf\n"), None);
        assert_eq!(
            Request::parse(&format!("open {}\n", "x".repeat(5000))),
            None
        );
    }
}
