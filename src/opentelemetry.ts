// Public entry of 'stratacache/opentelemetry': spans and metrics through @opentelemetry/api (an optional peer).
export { openTelemetry, type OpenTelemetryOptions } from './observability/opentelemetry.js'
