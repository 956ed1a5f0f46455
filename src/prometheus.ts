// Public entry of 'stratacache/prometheus': Prometheus metrics on prom-client (an optional peer dependency).
export {
  prometheusMetrics,
  type PrometheusMetrics,
  type PrometheusOptions,
} from './observability/prometheus.js'
