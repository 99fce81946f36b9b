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
    /// Linear memories its core instances define (upper bound).
    pub memories: u64,
    /// Tables its core instances define (upper bound).
    pub tables: u64,
}

impl Shape {
    fn add(&mut self, other: &Shape) {
        self.core_instances = self.core_instances.saturating_add(other.core_instances);
        self.component_instances = self
            .component_instances
            .saturating_add(other.component_instances);
        self.memories = self.memories.saturating_add(other.memories);
        self.tables = self.tables.saturating_add(other.tables);
    }

    fn max(&mut self, other: &Shape) {
        self.core_instances = self.core_instances.max(other.core_instances);
        self.component_instances = self.component_instances.max(other.component_instances);
        self.memories = self.memories.max(other.memories);
        self.tables = self.tables.max(other.tables);
    }

    fn check(&self, caps: &ComponentCaps) -> Result<(), ShapeError> {
        over("core instances", self.core_instances, caps.core_instances)?;
        over(
            "component instances",
            self.component_instances,
            caps.component_instances,
        )?;
        over("linear memories", self.memories, caps.memories)?;
        over("tables", self.tables, caps.tables)
    }
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

/// What a core module defines, as an instantiation costs it.
#[derive(Debug, Clone, Copy, Default)]
struct ModuleCost {
    memories: u64,
    tables: u64,
}

enum Frame {
    Module(ModuleCost),
    Component {
        shape: Shape,
        /// The component's core module index space.
        modules: Vec<ModuleCost>,
    },
}

/// Count (an upper bound of) the instances, memories and tables the
/// flattened component creates, and check them against `caps`.
///
/// Core modules are resolved through the component's module index space
/// (definitions, outer aliases, re-exports), so a flat component is counted
/// exactly. A nested component instantiated anywhere is charged what the
/// largest component defined so far costs; a module taken from an instance
/// export, what the largest module seen so far defines.
pub fn prescan(bytes: &[u8], caps: &ComponentCaps) -> Result<Shape, ShapeError> {
    use wasmparser::{
        ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, ComponentTypeRef,
    };
    let mut stack: Vec<Frame> = Vec::new();
    // The most a nested component defined so far costs when instantiated,
    // and the most any module seen so far defines.
    let mut max_component = Shape::default();
    let mut max_module = ModuleCost::default();
    let malformed = |e: wasmparser::BinaryReaderError| ShapeError::Malformed(e.to_string());
    let bad_index =
        |what: &str, i: u32| ShapeError::Malformed(format!("{what} index {i} out of range"));
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(malformed)?;
        match payload {
            Payload::Version { encoding, .. } => stack.push(match encoding {
                Encoding::Component => Frame::Component {
                    shape: Shape::default(),
                    modules: Vec::new(),
                },
                Encoding::Module => Frame::Module(ModuleCost::default()),
            }),
            Payload::MemorySection(reader) => {
                if let Some(Frame::Module(m)) = stack.last_mut() {
                    m.memories = m.memories.saturating_add(u64::from(reader.count()));
                }
            }
            Payload::TableSection(reader) => {
                if let Some(Frame::Module(m)) = stack.last_mut() {
                    m.tables = m.tables.saturating_add(u64::from(reader.count()));
                }
            }
            Payload::InstanceSection(reader) => {
                if let Some(Frame::Component { shape, modules }) = stack.last_mut() {
                    for item in reader {
                        if let Instance::Instantiate { module_index, .. } =
                            item.map_err(malformed)?
                        {
                            let m = modules
                                .get(module_index as usize)
                                .ok_or_else(|| bad_index("core module", module_index))?;
                            shape.add(&Shape {
                                core_instances: 1,
                                component_instances: 0,
                                memories: m.memories,
                                tables: m.tables,
                            });
                        }
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                if let Some(Frame::Component { shape, .. }) = stack.last_mut() {
                    for item in reader {
                        if let ComponentInstance::Instantiate { .. } = item.map_err(malformed)? {
                            shape.add(&max_component);
                            shape.component_instances = shape.component_instances.saturating_add(1);
                        }
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for item in reader {
                    if let ComponentTypeRef::Module(_) = item.map_err(malformed)?.ty {
                        return Err(ShapeError::ImportsModules);
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for item in reader {
                    let pushed = match item.map_err(malformed)? {
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::CoreModule,
                            count,
                            index,
                        } => {
                            let outer = stack
                                .len()
                                .checked_sub(1 + count as usize)
                                .and_then(|i| stack.get(i));
                            match outer {
                                Some(Frame::Component { modules, .. }) => *modules
                                    .get(index as usize)
                                    .ok_or_else(|| bad_index("outer core module", index))?,
                                _ => return Err(bad_index("outer alias count", count)),
                            }
                        }
                        ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Module,
                            ..
                        } => max_module,
                        _ => continue,
                    };
                    if let Some(Frame::Component { modules, .. }) = stack.last_mut() {
                        modules.push(pushed);
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for item in reader {
                    let e = item.map_err(malformed)?;
                    if e.kind == ComponentExternalKind::Module
                        && let Some(Frame::Component { modules, .. }) = stack.last_mut()
                    {
                        let m = *modules
                            .get(e.index as usize)
                            .ok_or_else(|| bad_index("exported core module", e.index))?;
                        modules.push(m);
                    }
                }
            }
            Payload::End(_) => match stack.pop() {
                Some(Frame::Module(m)) => {
                    max_module.memories = max_module.memories.max(m.memories);
                    max_module.tables = max_module.tables.max(m.tables);
                    if let Some(Frame::Component { modules, .. }) = stack.last_mut() {
                        modules.push(m);
                    }
                }
                Some(Frame::Component { shape, .. }) => {
                    if stack.is_empty() {
                        shape.check(caps)?;
                        return Ok(shape);
                    }
                    max_component.max(&shape);
                }
                None => {}
            },
            _ => {}
        }
    }
    Err(ShapeError::Malformed("the component has no end".into()))
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
        assert_eq!(s.memories, 2);
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
    fn memories_are_counted_per_instantiation() {
        let b = wat(r#"(component
              (core module $m (memory 1))
              (core module $n (table 1 funcref))
              (core instance (instantiate $n))
              (core instance (instantiate $m))
              (core instance (instantiate $m))
              (core instance (instantiate $m)))"#);
        let e = prescan(&b, &COMPONENT_CAPS).unwrap_err();
        assert_eq!(
            e,
            ShapeError::OverCap {
                what: "linear memories",
                found: 3,
                limit: 2
            }
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
