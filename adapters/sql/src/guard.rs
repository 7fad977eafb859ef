//! Catches writes of published entities that bypass the publisher: such a
//! write commits and is never published, and subscribers drift for good.
//!
//! sea-orm runs an entity's `ActiveModelBehavior` hooks on every
//! `ActiveModel::insert`, `update`, `save` and `delete`, inside whatever
//! transaction the write is made in. [`published_writes_only!`] gives a
//! published entity hooks that refuse a write unless [`SqlPublisher`]
//! (`insert`/`update`/`delete`, or a [`PublishingTransaction`]) makes it.
//! Multi-row statements (`insert_many`, `update_many`, `delete_many`) and
//! raw SQL run no hooks: the publisher refuses the first two on published
//! entities; raw SQL is the application's own business.
//!
//! [`SqlPublisher`]: crate::SqlPublisher
//! [`PublishingTransaction`]: crate::PublishingTransaction

use std::future::Future;

use sea_orm::DbErr;

tokio::task_local! {
    /// Set while the publisher writes a published record.
    static THROUGH_PUBLISHER: ();
}

/// Runs `write` as a write made by the publisher: the hooks let it through.
pub(crate) async fn through_publisher<F: Future>(write: F) -> F::Output {
    THROUGH_PUBLISHER.scope((), write).await
}

/// Refuses (and logs at ERROR) a write of published model `model` made
/// outside the publisher; lets the publisher's own writes through. Called by
/// the hooks [`published_writes_only!`](crate::published_writes_only) generates.
pub fn refuse_unpublished_write(model: &str, operation: &str) -> Result<(), DbErr> {
    if THROUGH_PUBLISHER.try_with(|_| ()).is_ok() {
        return Ok(());
    }
    let message = format!(
        "refused to {operation} a {model} outside SqlPublisher: it would commit and never be \
         published, and subscribers would never see it; write it with \
         SqlPublisher::insert/update/delete, or with tx.insert/update/delete in a \
         transaction from SqlPublisher::begin"
    );
    tracing::error!(model, operation, "{message}");
    Err(DbErr::Custom(message))
}

/// Implements `ActiveModelBehavior` for a published entity's `ActiveModel`
/// so that a write made without the [`SqlPublisher`](crate::SqlPublisher)
/// fails instead of committing unpublished. Write it in the entity's module
/// in place of `impl ActiveModelBehavior for ActiveModel {}`:
///
/// ```text
/// promiscuous::sql::published_writes_only!(ActiveModel);
/// ```
///
/// `ActiveModel::insert(&db)` (or inside `tx.connection()`) then fails with
/// a `DbErr::Custom` saying what to use instead; `publisher.insert(...)` and
/// `tx.insert(...)` work as before.
#[macro_export]
macro_rules! published_writes_only {
    ($active_model:ty) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::ActiveModelBehavior for $active_model {
            async fn before_save<C>(
                self,
                _db: &C,
                insert: bool,
            ) -> ::std::result::Result<Self, $crate::__private::DbErr>
            where
                C: $crate::__private::ConnectionTrait,
            {
                $crate::refuse_unpublished_write(
                    $crate::__private::model_name::<$active_model>(),
                    if insert { "insert" } else { "update" },
                )?;
                Ok(self)
            }

            async fn before_delete<C>(
                self,
                _db: &C,
            ) -> ::std::result::Result<Self, $crate::__private::DbErr>
            where
                C: $crate::__private::ConnectionTrait,
            {
                $crate::refuse_unpublished_write(
                    $crate::__private::model_name::<$active_model>(),
                    "delete",
                )?;
                Ok(self)
            }
        }
    };
}
