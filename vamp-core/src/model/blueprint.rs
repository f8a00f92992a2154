//! Blueprints: clusters of services plus entry gateways (spec §1.5).

use serde::Serialize;

use super::{
    Argument, Breed, Cpu, Dialects, Gateway, HealthCheck, Map, Memory, Metadata, Named, Ref,
    ReferenceStyle, Sla,
};

/// A blueprint.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Blueprint {
    /// The name.
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// External gateways by port key (`"9050"`, `"9060/tcp"`), spec §1.5.4.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub gateways: Map<Gateway>,
    /// Deployment-scope variables, always in the long form
    /// `<cluster>.environment_variables.<NAME>` (or `<cluster>.ports.<port>`), spec §1.5.5.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment_variables: Map<Option<String>>,
    /// Deployment-scope dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
    /// The clusters, in source order.
    pub clusters: Map<Cluster>,
}

super::reference::named!(Blueprint);

impl ReferenceStyle for Blueprint {
    const PLAIN_STRING: bool = true;
}

/// A cluster: services that share gateways (spec §1.5.1).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Cluster {
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The services.
    pub services: Vec<Service>,
    /// Internal gateway settings by breed port name; the key is empty for the anonymous form.
    #[serde(
        skip_serializing_if = "Map::is_empty",
        serialize_with = "serialize_cluster_gateways"
    )]
    pub gateways: Map<Gateway>,
    /// The cluster's SLA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<Ref<Sla>>,
    /// Cluster-scope health checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Default network of the cluster's services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Cluster-scope dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
}

/// Writes cluster gateways; the anonymous one (empty key, spec §1.5.3) without a port key.
pub(crate) fn serialize_cluster_gateways<S: serde::Serializer>(
    gateways: &Map<Gateway>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match gateways.get("") {
        Some(anonymous) if gateways.len() == 1 => anonymous.serialize(s),
        _ => gateways.serialize(s),
    }
}

/// A service: a breed with its scale and overrides.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Service {
    /// The breed.
    pub breed: Ref<Breed>,
    /// The scale; `None` = the default scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Ref<Scale>>,
    /// Service-scope environment variable values.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment_variables: Map<String>,
    /// Arguments added to the breed's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<Argument>,
    /// Service-scope health checks; `Some([])` disables them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Network, e.g. `BRIDGE`, `HOST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Service-scope dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
}

impl Default for Ref<Breed> {
    fn default() -> Self {
        Ref::Reference(String::new())
    }
}

/// A scale: CPU, memory and number of instances (spec §1.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Scale {
    /// The name (empty when inline and anonymous).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// CPU cores.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Instances (default 1).
    pub instances: u32,
}

super::reference::named!(Scale);

impl ReferenceStyle for Scale {
    const PLAIN_STRING: bool = true;
}

impl Blueprint {
    /// This blueprint with its named inline breeds, scales and SLAs replaced by references to
    /// their names (spec §2.1 `only_references`); anonymous ones stay inline.
    ///
    /// ```
    /// use vamp_core::model::Artifact;
    /// let Artifact::Blueprint(bp) = vamp_core::dsl::read(
    ///     "kind: blueprints\nname: shop\nclusters:\n  web:\n    breed: {name: web:1, deployable: img}\n",
    ///     None,
    /// ).unwrap().remove(0) else { panic!() };
    /// let bp = bp.only_references();
    /// assert_eq!(bp.clusters["web"].services[0].breed.reference(), Some("web:1"));
    /// ```
    pub fn only_references(mut self) -> Blueprint {
        fn named<T: Named>(r: &mut Ref<T>) {
            if let Ref::Inline(t) = r
                && !t.name().is_empty()
            {
                *r = Ref::Reference(t.name().to_owned());
            }
        }
        for cluster in self.clusters.values_mut() {
            for service in &mut cluster.services {
                named(&mut service.breed);
                if let Some(scale) = &mut service.scale {
                    named(scale);
                }
            }
            if let Some(sla) = &mut cluster.sla {
                named(sla);
            }
        }
        self
    }
}
