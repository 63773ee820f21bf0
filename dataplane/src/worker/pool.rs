//! The control plane's side of all media workers (MED-19): starts one worker per core with a
//! disjoint share of the port pairs, places each new session on the least-loaded worker, and
//! routes later commands for a session to the worker that holds it (a session never moves).
//!
//! Owns: the placement table (session → worker) and the per-worker load, counted here as the
//! sessions placed on each worker — known at once, without asking the workers.
//!
//! Does not own: the workers' events (each worker has its own receiver, see
//! [`WorkerPool::workers`]; the caller selects over them), config parsing.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use thiserror::Error;

use super::{spawn, SendError, WorkerConfig, WorkerHandle};
use crate::ports::PortRanges;
use crate::session::{LegConfig, SessionConfig};
use crate::{Command, SessionHandle};

/// Why the pool could not route a command.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No worker holds this session.
    #[error("no worker holds this session")]
    UnknownSession(Command),
    /// A session with this handle is already placed.
    #[error("the session handle is already placed")]
    DuplicateSession(Command),
    /// The worker's channel refused the command.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// All media workers: see the module documentation.
#[derive(Debug)]
pub struct WorkerPool {
    workers: Vec<WorkerHandle>,
    load: Vec<usize>,
    placed: HashMap<SessionHandle, usize>,
}

impl WorkerPool {
    /// Starts one worker per entry of `cores` (`Some(core)` pins it), each with a disjoint
    /// share of `ranges`, binding on `bind_ip`.
    pub fn spawn(
        bind_ip: IpAddr,
        ranges: &PortRanges,
        cores: &[Option<usize>],
    ) -> io::Result<Self> {
        let n = cores.len().max(1);
        let mut workers = Vec::with_capacity(n);
        for (i, share) in ranges.split(n).into_iter().enumerate() {
            let id = u16::try_from(i).map_err(|_| io::Error::other("too many media workers"))?;
            let mut config = WorkerConfig::new(id, bind_ip, share);
            config.core = cores.get(i).copied().flatten();
            workers.push(spawn(config)?);
        }
        Ok(Self {
            load: vec![0; workers.len()],
            workers,
            placed: HashMap::new(),
        })
    }

    /// The workers, by id (their events, counters, and shutdown).
    #[must_use]
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// The worker a session was placed on.
    #[must_use]
    pub fn worker_of(&self, session: SessionHandle) -> Option<usize> {
        self.placed.get(&session).copied()
    }

    /// Places a new session on the least-loaded worker (the lowest id on a tie) and sends it
    /// the create command; returns the worker's id. The answer comes on that worker's events.
    pub fn create(
        &mut self,
        session: SessionHandle,
        config: SessionConfig,
        legs: Vec<LegConfig>,
    ) -> Result<usize, PoolError> {
        let command = Command::CreateSession {
            session,
            config,
            legs,
        };
        if self.placed.contains_key(&session) {
            return Err(PoolError::DuplicateSession(command));
        }
        let (w, _) = self
            .load
            .iter()
            .enumerate()
            .min_by_key(|&(i, load)| (*load, i))
            .expect("a pool has at least one worker");
        self.workers[w].send(command)?;
        self.load[w] += 1;
        self.placed.insert(session, w);
        Ok(w)
    }

    /// Sends a command to the worker of its session (a create is placed as by
    /// [`WorkerPool::create`]); a delete also ends the placement. A ping has no session: send
    /// it to each worker through [`WorkerPool::workers`].
    pub fn send(&mut self, command: Command) -> Result<(), PoolError> {
        let session = match command {
            Command::CreateSession {
                session,
                config,
                legs,
            } => return self.create(session, config, legs).map(|_| ()),
            Command::Ping { .. } => return Err(PoolError::UnknownSession(command)),
            Command::UpdateSession { session, .. }
            | Command::SetHold { session, .. }
            | Command::DeleteSession { session }
            | Command::QueryStats { session, .. } => session,
        };
        let Some(&w) = self.placed.get(&session) else {
            return Err(PoolError::UnknownSession(command));
        };
        let delete = matches!(command, Command::DeleteSession { .. });
        self.workers[w].send(command)?;
        if delete {
            self.forget(session);
        }
        Ok(())
    }

    /// Ends a placement without a command (a create the worker refused).
    pub fn forget(&mut self, session: SessionHandle) {
        if let Some(w) = self.placed.remove(&session) {
            self.load[w] -= 1;
        }
    }
}
