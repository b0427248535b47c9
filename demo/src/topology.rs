//! The demo shop: which services exist, where they run, and whom each route calls.

/// A step a route takes, in order (or concurrently inside [`Step::Parallel`]).
#[derive(Debug, Clone)]
pub enum Step {
    /// An HTTP call to another demo service. `optional` failures are tolerated (degraded page).
    Http {
        service: &'static str,
        method: &'static str,
        path: &'static str,
        optional: bool,
    },
    /// A unary gRPC call to another demo service.
    Grpc {
        service: &'static str,
        method: &'static str,
    },
    /// A call to an uninstrumented peer (database, cache, external API), seen only through the
    /// caller's client span.
    Peer(Peer),
    /// Publishes to the in-process queue; a consumer service picks the message up.
    Publish {
        topic: &'static str,
    },
    Parallel(Vec<Step>),
}

/// An uninstrumented dependency.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// `peer.service`, also the name chaos controls use.
    pub name: &'static str,
    pub kind: PeerKind,
    pub region: &'static str,
    /// Typical latency range, ms.
    pub latency_ms: (u64, u64),
}

#[derive(Debug, Clone, Copy)]
pub enum PeerKind {
    /// `db.system.name`, operation, collection/table.
    Database(&'static str, &'static str, &'static str),
    /// External HTTPS API host and path.
    External(&'static str, &'static str),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// For HTTP: the axum path; for gRPC: the method path `/pkg.Service/Method`.
    pub path: &'static str,
    pub method: &'static str,
    /// Own work, ms.
    pub work_ms: (u64, u64),
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub region: &'static str,
    pub routes: Vec<Route>,
    /// The topic this service consumes, with what it does per message.
    pub consumes: Option<(&'static str, Route)>,
}

pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// The messaging system the in-process queue pretends to be.
pub const QUEUE_SYSTEM: &str = "rabbitmq";
pub const QUEUE_PEER: &str = "orders-queue";

fn http(service: &'static str, method: &'static str, path: &'static str) -> Step {
    Step::Http {
        service,
        method,
        path,
        optional: false,
    }
}

fn optional(service: &'static str, path: &'static str) -> Step {
    Step::Http {
        service,
        method: "GET",
        path,
        optional: true,
    }
}

fn grpc(service: &'static str, method: &'static str) -> Step {
    Step::Grpc { service, method }
}

fn db(
    name: &'static str,
    system: &'static str,
    op: &'static str,
    table: &'static str,
    region: &'static str,
) -> Step {
    Step::Peer(Peer {
        name,
        kind: PeerKind::Database(system, op, table),
        region,
        latency_ms: (1, 8),
    })
}

fn external(name: &'static str, host: &'static str, path: &'static str) -> Step {
    Step::Peer(Peer {
        name,
        kind: PeerKind::External(host, path),
        region: "external",
        latency_ms: (20, 80),
    })
}

fn route(method: &'static str, path: &'static str, work: (u64, u64), steps: Vec<Step>) -> Route {
    Route {
        path,
        method,
        work_ms: work,
        steps,
    }
}

fn svc(name: &'static str, region: &'static str, routes: Vec<Route>) -> ServiceSpec {
    ServiceSpec {
        name,
        region,
        routes,
        consumes: None,
    }
}

/// The 18 services of the demo shop.
pub fn services() -> Vec<ServiceSpec> {
    const US: &str = "us-east-1";
    const EU: &str = "eu-west-1";
    const AP: &str = "ap-southeast-1";
    let verify = || http("auth", "GET", "/verify");
    let mut orders = svc("orders", US, vec![]);
    orders.consumes = Some((
        "orders",
        route(
            "CONSUME",
            "orders",
            (2, 6),
            vec![
                db("orders-db", "postgresql", "INSERT", "orders", US),
                http("shipping", "POST", "/ship"),
                http("notifications", "POST", "/notify"),
            ],
        ),
    ));
    vec![
        svc(
            "edge-gateway",
            US,
            vec![
                route(
                    "GET",
                    "/api/home",
                    (1, 3),
                    vec![
                        verify(),
                        Step::Parallel(vec![
                            http("catalog", "GET", "/products"),
                            optional("recommendations", "/recommendations"),
                            optional("ads", "/ads"),
                        ]),
                    ],
                ),
                route(
                    "GET",
                    "/api/search",
                    (1, 3),
                    vec![verify(), http("search", "GET", "/search")],
                ),
                route(
                    "GET",
                    "/api/product",
                    (1, 3),
                    vec![
                        http("catalog", "GET", "/product"),
                        optional("reviews", "/reviews"),
                        optional("recommendations", "/recommendations"),
                    ],
                ),
                route(
                    "POST",
                    "/api/cart",
                    (1, 3),
                    vec![verify(), http("cart", "POST", "/cart/items")],
                ),
                route(
                    "POST",
                    "/api/checkout",
                    (1, 3),
                    vec![verify(), http("checkout", "POST", "/checkout")],
                ),
            ],
        ),
        svc(
            "auth",
            US,
            vec![route(
                "GET",
                "/verify",
                (1, 4),
                vec![
                    db("session-cache", "redis", "GET", "sessions", US),
                    db("users-db", "postgresql", "SELECT", "users", US),
                ],
            )],
        ),
        svc(
            "catalog",
            EU,
            vec![
                route(
                    "GET",
                    "/products",
                    (3, 10),
                    vec![
                        db("catalog-cache", "redis", "MGET", "products", EU),
                        db("catalog-db", "mongodb", "find", "products", EU),
                    ],
                ),
                route(
                    "GET",
                    "/product",
                    (2, 6),
                    vec![db("catalog-db", "mongodb", "findOne", "products", EU)],
                ),
            ],
        ),
        svc(
            "search",
            EU,
            vec![route(
                "GET",
                "/search",
                (5, 15),
                vec![
                    db("search-index", "elasticsearch", "search", "products", EU),
                    http("catalog", "GET", "/products"),
                ],
            )],
        ),
        svc(
            "recommendations",
            AP,
            vec![route(
                "GET",
                "/recommendations",
                (2, 8),
                vec![
                    grpc("ml-ranker", "/ml.Ranker/Rank"),
                    http("catalog", "GET", "/product"),
                ],
            )],
        ),
        svc(
            "ml-ranker",
            AP,
            vec![
                route(
                    "POST",
                    "/ml.Ranker/Rank",
                    (5, 20),
                    vec![db("feature-store", "redis", "HGETALL", "features", AP)],
                ),
                route(
                    "POST",
                    "/ml.Ranker/Score",
                    (3, 10),
                    vec![db("feature-store", "redis", "HGETALL", "features", AP)],
                ),
            ],
        ),
        svc(
            "ads",
            AP,
            vec![route(
                "GET",
                "/ads",
                (2, 6),
                vec![db("ads-db", "cassandra", "SELECT", "campaigns", AP)],
            )],
        ),
        svc(
            "reviews",
            EU,
            vec![route(
                "GET",
                "/reviews",
                (2, 5),
                vec![db("reviews-db", "postgresql", "SELECT", "reviews", EU)],
            )],
        ),
        svc(
            "cart",
            US,
            vec![
                route(
                    "POST",
                    "/cart/items",
                    (1, 4),
                    vec![
                        grpc("inventory", "/shop.Inventory/Check"),
                        db("cart-cache", "redis", "HSET", "carts", US),
                    ],
                ),
                route(
                    "GET",
                    "/cart",
                    (1, 3),
                    vec![db("cart-cache", "redis", "HGETALL", "carts", US)],
                ),
            ],
        ),
        svc(
            "checkout",
            US,
            vec![route(
                "POST",
                "/checkout",
                (3, 8),
                vec![
                    http("cart", "GET", "/cart"),
                    http("pricing", "GET", "/quote"),
                    grpc("inventory", "/shop.Inventory/Reserve"),
                    http("payments", "POST", "/charge"),
                    Step::Publish { topic: "orders" },
                ],
            )],
        ),
        svc(
            "pricing",
            EU,
            vec![route(
                "GET",
                "/quote",
                (2, 6),
                vec![
                    db("pricing-db", "postgresql", "SELECT", "prices", EU),
                    http("currency", "GET", "/convert"),
                ],
            )],
        ),
        svc(
            "currency",
            EU,
            vec![route(
                "GET",
                "/convert",
                (1, 3),
                vec![external(
                    "fx-rates-api",
                    "api.fxrates.example",
                    "/v1/latest",
                )],
            )],
        ),
        svc(
            "payments",
            US,
            vec![route(
                "POST",
                "/charge",
                (3, 8),
                vec![
                    http("fraud", "POST", "/score"),
                    external("stripe", "api.stripe.com", "/v1/charges"),
                ],
            )],
        ),
        svc(
            "fraud",
            AP,
            vec![route(
                "POST",
                "/score",
                (2, 6),
                vec![
                    grpc("ml-ranker", "/ml.Ranker/Score"),
                    db("fraud-db", "postgresql", "SELECT", "risk_scores", AP),
                ],
            )],
        ),
        svc(
            "inventory",
            US,
            vec![
                route(
                    "POST",
                    "/shop.Inventory/Check",
                    (1, 3),
                    vec![db("inventory-db", "postgresql", "SELECT", "stock", US)],
                ),
                route(
                    "POST",
                    "/shop.Inventory/Reserve",
                    (2, 5),
                    vec![db("inventory-db", "postgresql", "UPDATE", "stock", US)],
                ),
            ],
        ),
        orders,
        svc(
            "shipping",
            AP,
            vec![route(
                "POST",
                "/ship",
                (2, 6),
                vec![external("carrier-api", "api.carrier.example", "/shipments")],
            )],
        ),
        svc(
            "notifications",
            EU,
            vec![route(
                "POST",
                "/notify",
                (1, 3),
                vec![external("email-api", "api.sendgrid.com", "/v3/mail/send")],
            )],
        ),
    ]
}

/// Every uninstrumented peer's name (for validating chaos targets).
pub fn peers(specs: &[ServiceSpec]) -> Vec<Peer> {
    fn walk(steps: &[Step], out: &mut Vec<Peer>) {
        for s in steps {
            match s {
                Step::Peer(p) if !out.iter().any(|q| q.name == p.name) => out.push(*p),
                Step::Parallel(inner) => walk(inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for spec in specs {
        for r in spec
            .routes
            .iter()
            .chain(spec.consumes.iter().map(|(_, r)| r))
        {
            walk(&r.steps, &mut out);
        }
    }
    out
}

/// User journeys the load generator drives through the gateway, with weights.
pub const JOURNEYS: [(&str, &str, u32); 5] = [
    ("GET", "/api/home", 40),
    ("GET", "/api/search", 25),
    ("GET", "/api/product", 20),
    ("POST", "/api/cart", 10),
    ("POST", "/api/checkout", 8),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_targets_a_route_that_exists() {
        let specs = services();
        assert!((12..=20).contains(&specs.len()));
        fn check(steps: &[Step], specs: &[ServiceSpec]) {
            for s in steps {
                match s {
                    Step::Http { service, path, .. }
                    | Step::Grpc {
                        service,
                        method: path,
                    } => {
                        let target = specs.iter().find(|t| t.name == *service);
                        let target = target.unwrap_or_else(|| panic!("no service {service}"));
                        assert!(
                            target.routes.iter().any(|r| r.path == *path),
                            "{service} has no route {path}"
                        );
                    }
                    Step::Parallel(inner) => check(inner, specs),
                    _ => {}
                }
            }
        }
        for spec in &specs {
            assert!(REGIONS.contains(&spec.region));
            for r in spec
                .routes
                .iter()
                .chain(spec.consumes.iter().map(|(_, r)| r))
            {
                check(&r.steps, &specs);
            }
        }
        let gateway = specs.iter().find(|s| s.name == "edge-gateway").unwrap();
        for (_, path, _) in JOURNEYS {
            assert!(gateway.routes.iter().any(|r| r.path == path));
        }
    }
}
