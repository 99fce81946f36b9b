//! The shape of a component, checked when a plugin loads.
//!
//! A hostile component can ask for a lot before it runs a single instruction:
//! many core instances, each with its own linear memory (a component with 60
//! core instances of 64 MiB each reached 4 GB), many tables, or nested
//! components instantiated over and over (each nesting level multiplies what
//! the flattened component holds). [`ComponentCaps`] bounds all of that, and a
//! plugin over a cap is refused at load with [`ShapeError`], naming the cap
//! and the count found.
//!
//! Two checks, both at load:
//!
//! - [`prescan`], on the bytes, *before* compiling: an upper bound of the core
//!   and component instances the flattened component creates (nested
//!   components count each time they are instantiated, at the cost of the
//!   largest component defined so far), so that a nesting bomb is refused
//!   before wasmtime flattens it. For a component without nested components
//!   (what `cargo build --target wasm32-wasip2` makes) the bound is exact.
//! - [`check_compiled`], on the compiled component: the exact number of linear
//!   memories and tables all its core instances define, from wasmtime's own
//!   flattened view ([`wasmtime::component::Component::resources_required`]).
//!
//! The pooling allocator's per-component limits (see [`super::pool_config`])
//! are set from the same caps, so the pool refuses what these checks refuse,
//! and the store's limiter (see [`super::sandbox`]) caps the count per call
//! too. Memory *size* is not a shape question: all memories and tables of a
//! call share one budget, `limits.memory_mb`, enforced while it runs.

use wasmparser::{ComponentInstance, Encoding, Instance, Parser, Payload};

/// Caps on what one component may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentCaps {
    /// Core module instances of the flattened component.
    pub core_instances: u32,
    /// Component instances (nested instantiations) of the component.
    pub component_instances: u32,
    /// Linear memories defined by all its core instances.
    pub memories: u32,
    /// Tables defined by all its core instances.
    pub tables: u32,
}

/// The caps every plugin is held to. A Rust connector built for
/// `wasm32-wasip2` has 1 memory, 2 tables and 3 or 4 core instances; these
/// leave room for other toolchains while keeping one call's pool use small.
pub const COMPONENT_CAPS: ComponentCaps = ComponentCaps {
    core_instances: 16,
    component_instances: 16,
    memories: 2,
    tables: 8,
};

/// What a component holds, as counted at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Core module instances (upper bound, see [`prescan`]).
    pub core_instances: u64,
    /// Component instances (upper bound, see [`prescan`]).
    pub component_instances: u64,
}

/// Why a component's shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// More of something than its cap allows.
    #[error(
        "it has {found} {what}, more than the limit of {limit} per plugin; \
         a connector needs far fewer (a Rust connector has 1 memory, 2 tables, 3-4 core instances): \
         rebuild it without the extra {what}"
    )]
    OverCap {
        /// What was counted ("core instances", "linear memories", ...).
        what: &'static str,
        /// The count found.
        found: u64,
        /// The cap.
        limit: u32,
    },
    /// The component imports core modules: what it would instantiate cannot
    /// be known (and the host never provides modules).
    #[error(
        "it imports core modules, so what it instantiates cannot be checked; \
         connectors must contain all their code"
    )]
    ImportsModules,
    /// The bytes are not a well-formed component.
    #[error("it is not a well-formed component: {0}")]
    Malformed(String),
}

#[derive(Default)]
struct Frame {
    component: bool,
    shape: Shape,
}

/// Count (an upper bound of) the core and component instances the
/// flattened component creates, and check them against `caps`.
pub fn prescan(bytes: &[u8], caps: &ComponentCaps) -> Result<Shape, ShapeError> {
    let mut stack: Vec<Frame> = Vec::new();
    // The most a nested component defined so far costs when instantiated.
    let mut max_component = Shape::default();
    let mut total: Option<Shape> = None;
    let malformed = |e: wasmparser::BinaryReaderError| ShapeError::Malformed(e.to_string());
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::Version { encoding, .. } => stack.push(Frame {
                component: encoding == Encoding::Component,
                shape: Shape::default(),
            }),
            Payload::InstanceSection(reader) => {
                if let Some(f) = stack.last_mut() {
                    for item in reader {
                        if let Instance::Instantiate { .. } = item.map_err(malformed)? {
                            f.shape.core_instances = f.shape.core_instances.saturating_add(1);
                        }
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                if let Some(f) = stack.last_mut() {
                    for item in reader {
                        if let ComponentInstance::Instantiate { .. } = item.map_err(malformed)? {
                            f.shape.component_instances = f
                                .shape
                                .component_instances
                                .saturating_add(1)
                                .saturating_add(max_component.component_instances);
                            f.shape.core_instances = f
                                .shape
                                .core_instances
                                .saturating_add(max_component.core_instances);
                        }
                    }
                }
                check(&stack, caps)?;
            }
            Payload::End(_) => {
                if let Some(f) = stack.pop()
                    && f.component
                {
                    if stack.is_empty() {
                        total = Some(f.shape);
                    } else {
                        max_component.core_instances =
                            max_component.core_instances.max(f.shape.core_instances);
                        max_component.component_instances = max_component
                            .component_instances
                            .max(f.shape.component_instances);
                    }
                }
            }
            _ => {}
        }
        check(&stack, caps)?;
    }
    let total = total.ok_or_else(|| ShapeError::Malformed("the component has no end".into()))?;
    over("core instances", total.core_instances, caps.core_instances)?;
    over(
        "component instances",
        total.component_instances,
        caps.component_instances,
    )?;
    Ok(total)
}

/// Stop early (before a nesting bomb saturates) once any open frame is over.
fn check(stack: &[Frame], caps: &ComponentCaps) -> Result<(), ShapeError> {
    for f in stack {
        over(
            "core instances",
            f.shape.core_instances,
            caps.core_instances,
        )?;
        over(
            "component instances",
            f.shape.component_instances,
            caps.component_instances,
        )?;
    }
    Ok(())
}

fn over(what: &'static str, found: u64, limit: u32) -> Result<(), ShapeError> {
    if found > u64::from(limit) {
        Err(ShapeError::OverCap { what, found, limit })
    } else {
        Ok(())
    }
}

/// Check the memories and tables of a compiled component against `caps`.
pub fn check_compiled(
    component: &wasmtime::component::Component,
    caps: &ComponentCaps,
) -> Result<(), ShapeError> {
    let r = component
        .resources_required()
        .ok_or(ShapeError::ImportsModules)?;
    over("linear memories", u64::from(r.num_memories), caps.memories)?;
    over("tables", u64::from(r.num_tables), caps.tables)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(s: &str) -> Vec<u8> {
        wat::parse_str(s).unwrap_or_else(|e| panic!("bad test WAT: {e}"))
    }

    #[test]
    fn flat_components_are_counted_exactly() {
        let b = wat(r#"(component
              (core module $m (memory 1))
              (core instance (instantiate $m))
              (core instance (instantiate $m))
              (core instance))"#);
        let s = prescan(&b, &COMPONENT_CAPS).unwrap();
        assert_eq!(s.core_instances, 2);
        assert_eq!(s.component_instances, 0);
    }

    #[test]
    fn too_many_core_instances_are_refused_naming_the_cap() {
        let body = "(core instance (instantiate $m))".repeat(17);
        let b = wat(&format!("(component (core module $m) {body})"));
        let e = prescan(&b, &COMPONENT_CAPS).unwrap_err();
        assert_eq!(
            e,
            ShapeError::OverCap {
                what: "core instances",
                found: 17,
                limit: 16
            }
        );
        let m = e.to_string();
        assert!(
            m.contains("17 core instances") && m.contains("limit of 16"),
            "{m}"
        );
    }

    #[test]
    fn nested_instantiation_multiplies() {
        // Each level instantiates the previous one twice: 2^depth core instances.
        let mut c = "(component (core module $m) (core instance (instantiate $m)))".to_string();
        for _ in 0..30 {
            c = format!(
                "(component (component $c {inner}) (instance (instantiate $c)) (instance (instantiate $c)))",
                inner = &c["(component ".len()..c.len() - 1]
            );
        }
        let e = prescan(&wat(&c), &COMPONENT_CAPS).unwrap_err();
        assert!(matches!(e, ShapeError::OverCap { .. }), "{e:?}");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let mut b = wat("(component (core module $m))");
        b.truncate(b.len() - 3);
        assert!(matches!(
            prescan(&b, &COMPONENT_CAPS),
            Err(ShapeError::Malformed(_))
        ));
    }
}
