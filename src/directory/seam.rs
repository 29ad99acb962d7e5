//! The seam between the directory logic and the wire: [`Ldap`], the six LDAP operations that
//! [`super::Directory`], the applier and the worker need, and nothing else.
//!
//! Two implementations: [`super::Connection`] (ldap3 over TCP/TLS, the production path) and,
//! for in-process tests, `super::fake::FakeDirectory` (an in-memory DIT). Everything above the
//! seam — anchors, conflicts, paging across owned OUs, ranged `member` reads, batching and
//! the result-code rules of member writes — is the same code for both.
//!
//! # Guarantees
//! - An implementation reports a refused operation as [`DirectoryError::Operation`] with the
//!   server's result code, and a broken or unreachable server as
//!   [`DirectoryError::Transport`] / [`DirectoryError::Connect`], so the callers' retry and
//!   "already done" rules apply the same way to both.
//!
//! Imports: [`super::error`] and ldap3's value types.

use std::collections::HashSet;
use std::future::Future;

use ldap3::{Mod, Scope, SearchEntry};

use super::error::DirectoryError;

/// How DN-valued attributes (`member`) come back from a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnForm {
    /// Plain DNs.
    Plain,
    /// Extended DNs (`<GUID=…>;<SID=…>;CN=…`, the extended-DN control with string forms), so
    /// members are known by SID whatever their names.
    Extended,
}

/// Receives a paged search's entries one page at a time.
pub type PageSink<'a> = &'a mut (dyn FnMut(Vec<SearchEntry>) + Send);

/// The LDAP operations the service makes. Cheap to clone; clones share the same connections
/// (or one in-memory directory).
pub trait Ldap: Clone + Send + Sync + 'static {
    /// One search (no paging); referrals are skipped. A missing base is
    /// [`super::ResultCode::NO_SUCH_OBJECT`].
    fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
    ) -> impl Future<Output = Result<Vec<SearchEntry>, DirectoryError>> + Send;

    /// A search read `page_size` entries at a time (RFC 2696), so a server's `MaxPageSize`
    /// never truncates it. Each page's entries go to `sink` as they arrive (a listing of a
    /// large tenant is never held whole); returns the number of pages read.
    #[allow(clippy::too_many_arguments)] // the search's own parameters, plus where pages go
    fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
        page_size: usize,
        sink: PageSink<'_>,
    ) -> impl Future<Output = Result<usize, DirectoryError>> + Send;

    /// Adds an entry.
    fn add(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Modifies an entry (all modifications or none).
    fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Renames an entry to `new_rdn` (the old RDN value is deleted) and, with `new_parent`,
    /// moves it.
    fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Deletes a leaf entry.
    fn delete(&self, dn: &str) -> impl Future<Output = Result<(), DirectoryError>> + Send;
}
