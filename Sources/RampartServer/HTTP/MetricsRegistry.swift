import Metrics
import Prometheus
import Synchronization

/// The process-wide Prometheus registry behind `/metrics`.
///
/// swift-metrics may be bootstrapped once per process, so the first server to start does it and every
/// later one (tests start many) shares the same registry.
enum MetricsRegistry {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    static var shared: PrometheusCollectorRegistry {
        state.withLock { current in
            if let current { return current }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            current = registry
            return registry
        }
    }
}
