//! The registry-identity binding: a replica made from one registry history
//! (the registry store's random id) must never apply another's records, even
//! when a registry restored from another backup appears behind the same address.

use std::sync::Mutex;

use crate::FollowError;

type Persist = Box<dyn Fn(&str) -> Result<(), FollowError> + Send + Sync>;

/// The history a follower is bound to: unbound until the first batch, then
/// that store id only.
pub struct Binding {
    bound: Mutex<Option<String>>,
    persist: Option<Persist>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("bound", &self.bound())
            .field("persistent", &self.persist.is_some())
            .finish()
    }
}

impl Binding {
    /// A binding kept in memory: for a follower whose state does not survive
    /// a restart (the OCSP index), bound anew at each start.
    pub fn in_memory() -> Binding {
        Binding {
            bound: Mutex::new(None),
            persist: None,
        }
    }

    /// A binding kept beside the replica's state: `bound` is what was
    /// recorded before (if anything), `persist` records the first binding
    /// (durably) before anything of that history is applied.
    pub fn persistent(
        bound: Option<String>,
        persist: impl Fn(&str) -> Result<(), FollowError> + Send + Sync + 'static,
    ) -> Binding {
        Binding {
            bound: Mutex::new(bound),
            persist: Some(Box::new(persist)),
        }
    }

    /// The store id bound to, if any.
    pub fn bound(&self) -> Option<String> {
        self.bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Accepts `source_id` if it is the bound history (binding on first
    /// contact); refuses any other.
    pub fn check(&self, source_id: &str) -> Result<(), FollowError> {
        if source_id.is_empty() {
            return Err(FollowError::NoStoreId);
        }
        let mut bound = self
            .bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match bound.as_deref() {
            Some(b) if b == source_id => Ok(()),
            Some(b) => Err(FollowError::ForeignRegistry {
                bound: b.to_string(),
                got: source_id.to_string(),
            }),
            None => {
                if let Some(p) = &self.persist {
                    p(source_id)?;
                }
                *bound = Some(source_id.to_string());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn binds_on_first_contact_and_refuses_another_history() {
        let b = Binding::in_memory();
        assert!(matches!(b.check(""), Err(FollowError::NoStoreId)));
        b.check("aaaa").unwrap();
        b.check("aaaa").unwrap();
        let e = b.check("bbbb").unwrap_err();
        assert!(
            e.to_string()
                .contains("follows registry store aaaa, not bbbb"),
            "{e}"
        );
        assert_eq!(b.bound().as_deref(), Some("aaaa"));
    }

    #[test]
    fn a_persistent_binding_records_once_and_remembers() {
        let saved = Arc::new(Mutex::new(Vec::<String>::new()));
        let s = saved.clone();
        let b = Binding::persistent(None, move |id| {
            s.lock().unwrap().push(id.to_string());
            Ok(())
        });
        b.check("cafe").unwrap();
        b.check("cafe").unwrap();
        assert_eq!(*saved.lock().unwrap(), vec!["cafe".to_string()]);
        let again = Binding::persistent(Some("cafe".into()), |_| {
            Err(FollowError::Sink("must not persist again".into()))
        });
        again.check("cafe").unwrap();
        assert!(matches!(
            again.check("beef"),
            Err(FollowError::ForeignRegistry { .. })
        ));
        let failing = Binding::persistent(None, |_| Err(FollowError::Sink("disk".into())));
        assert!(failing.check("cafe").is_err());
        assert_eq!(failing.bound(), None, "not bound when recording failed");
    }
}
