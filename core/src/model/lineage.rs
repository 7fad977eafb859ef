//! Walking a polymorphic chain of definitions (a model, its parent, …).

use std::collections::HashSet;

/// A definition that may name a parent definition and declare attributes.
pub(crate) trait Lineage: 'static {
    /// The kind of attribute it declares.
    type Attribute: Copy;
    /// Its parent, if any.
    fn parent_definition(&self) -> Option<&'static Self>;
    /// The attributes it declares itself.
    fn own_attributes(&self) -> &'static [Self::Attribute];
    /// The name of an attribute.
    fn attribute_name(attribute: &Self::Attribute) -> &'static str;

    /// Itself, then its parent, and so on up to the root.
    fn ancestry(&self) -> Vec<&Self>
    where
        Self: Sized,
    {
        let mut chain = vec![self];
        while let Some(parent) = chain.last().and_then(|d| d.parent_definition()) {
            chain.push(parent);
        }
        chain
    }

    /// The first value `pick` finds, from itself up to the root.
    fn inherited<T>(&self, pick: impl Fn(&Self) -> Option<T>) -> Option<T>
    where
        Self: Sized,
    {
        self.ancestry().into_iter().find_map(pick)
    }

    /// Every attribute of the chain, the root's first, each name once.
    fn chain_attributes(&self) -> Vec<Self::Attribute>
    where
        Self: Sized,
    {
        let mut seen = HashSet::new();
        self.ancestry()
            .iter()
            .rev()
            .flat_map(|def| def.own_attributes().iter().copied())
            .filter(|attr| seen.insert(Self::attribute_name(attr)))
            .collect()
    }
}
