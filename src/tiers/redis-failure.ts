// Why a Redis connection failed, in an operator's words: the address, the reason, and what to check.
import { formatDuration } from '../core/format-duration.js'
import type { L2Failure } from './l2-store.js'

/** What the store knows about where it connects, to describe a failure. */
export interface RedisTarget {
  /** `host:port`, never with credentials. */
  readonly address: string
  /** Whether the store speaks TLS (a `rediss://` URL). Undefined for a client passed in. */
  readonly tls: boolean | undefined
  /** The store's `connectTimeout`, in ms (undefined for a client passed in). */
  readonly connectTimeoutMs: number | undefined
  /** The longest wait between reconnection attempts, in ms (undefined when the user's client retries). */
  readonly retryMs: number | undefined
}

/** `user:password@` in a URL, wherever it appears in a text. */
const CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi

/** `text` with the credentials of every URL in it replaced: `redis://***@host:6379`. Never print a password. */
export function redactUrl(text: string): string {
  return text.replace(CREDENTIALS, '$1***@')
}

/** `host:port` of a `redis[s]://` URL (port 6379 when none is given), without its credentials. */
export function addressOfUrl(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port === '' ? '6379' : parsed.port}`
  } catch {
    return redactUrl(url)
  }
}

/**
 * `host:port` a node-redis client passed in connects to, read from its options (`url`, or `socket.host` and
 * `socket.port`); undefined when it does not say.
 */
export function addressOfClient(client: unknown): string | undefined {
  try {
    const options = (client as { options?: { url?: unknown; socket?: { host?: unknown; port?: unknown } } })
      .options
    if (typeof options?.url === 'string') return addressOfUrl(options.url)
    const host = options?.socket?.host
    const port = options?.socket?.port
    if (typeof host === 'string' || typeof port === 'number') {
      return `${typeof host === 'string' ? host : 'localhost'}:${typeof port === 'number' ? port : 6379}`
    }
  } catch {
    // A client that hides its options: the failure's own address (ECONNREFUSED carries it) is the fallback.
  }
  return undefined
}

/** TLS codes Node (OpenSSL) gives when the server's certificate is not trusted. */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
])

/**
 * Describes why a connection to Redis failed: refused (nothing listens), a host that does not resolve, a timeout,
 * authentication, TLS, a server that is not Redis, a connection closed, or an unknown cause (its code and message).
 * `isReply`: the error is Redis's answer (an error reply), as opposed to a failure to reach it.
 */
export function describeRedisFailure(error: unknown, target: RedisTarget, isReply: boolean): L2Failure {
  const { code, name, message } = facts(error)
  // A client passed in may not say where it connects; network errors do.
  const address =
    target.address === '' ? (addressOfError(error) ?? 'the address of your client') : target.address
  const at = `Redis at ${address}`
  const failure = (reason: string, summary: string, advice: string): L2Failure => ({
    address,
    reason,
    summary,
    advice,
    retryMs: target.retryMs,
  })
  const checkUrl = "Check that redis-server runs and that the url's host and port are right"

  if (code === 'ECONNREFUSED') {
    return failure(code, `cannot reach ${at} (ECONNREFUSED: nothing listens there)`, checkUrl)
  }
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME') {
    const host = address.replace(/:\d+$/, '')
    return failure(
      code,
      `cannot reach ${at} (${code}: the host name "${host}" does not resolve)`,
      "Check the host name in the url: a typo, or a name only another network (a container's) knows",
    )
  }
  if (code === 'EAI_AGAIN') {
    return failure(
      code,
      `cannot reach ${at} (EAI_AGAIN: looking up the host name failed for now; DNS did not answer)`,
      'Check the host name in the url and that DNS answers from this machine',
    )
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return failure(
      code,
      `cannot reach ${at} (${code}: no route to that host)`,
      'Check the host in the url and the network between this machine and Redis',
    )
  }
  if (code === 'ETIMEDOUT' || name === 'ConnectionTimeoutError') {
    const within =
      target.connectTimeoutMs === undefined
        ? 'no answer in time'
        : `no answer within the connect timeout, ${formatDuration(target.connectTimeoutMs)}`
    return failure(
      code === 'ETIMEDOUT' ? code : 'CONNECT_TIMEOUT',
      `cannot reach ${at} (${code === 'ETIMEDOUT' ? 'ETIMEDOUT' : 'connect timeout'}: ${within})`,
      'Check the host and port and that no firewall drops the connection' +
        (target.tls === true ? '; a rediss:// url on a port without TLS also waits like this' : '') +
        '. If Redis is only far away, raise redisStore({ connectTimeout })',
    )
  }
  const reply = isReply ? (/^([A-Z][A-Z0-9_-]*)\b/.exec(message)?.[1] ?? 'ERR') : undefined
  if (reply === 'WRONGPASS') {
    return failure(
      reply,
      `cannot log in to ${at} (WRONGPASS: authentication failed: wrong username or password, or the user is disabled)`,
      'Check the password and the ACL user (redisStore({ username, password }) or the url)',
    )
  }
  if (reply === 'NOAUTH') {
    return failure(
      reply,
      `cannot log in to ${at} (NOAUTH: authentication failed: Redis requires a password and none was given)`,
      'Pass redisStore({ password }) (and `username` for an ACL user), or put them in the url',
    )
  }
  if (reply === 'ERR' && /\bAUTH\b.*without any password configured/i.test(message)) {
    return failure(
      'AUTH',
      `cannot log in to ${at} (authentication failed: a password was given, but Redis has none for this user)`,
      'Remove the password from the url or redisStore({ password }), or set one in Redis (requirepass, ACL)',
    )
  }
  if (isTlsFailure(code, message)) {
    return failure(
      code ?? 'TLS',
      `cannot set up TLS with ${at} (${code ?? 'TLS'}: ${tlsExplanation(code, message)})`,
      target.tls === false
        ? 'The port may expect TLS: use a rediss:// url with `tls`'
        : "Check `tls.ca` (the CA that signed the server's certificate), the host name it was issued for " +
            '(or `tls.servername`), and `tls.cert` and `tls.key` when the server asks for a client certificate',
    )
  }
  if (/^Unknown RESP type/.test(message)) {
    const first = /"(.)"/.exec(message)?.[1]
    return failure(
      'NOT_REDIS',
      `cannot talk to ${at}: what answers there is not Redis${first === undefined ? '' : ` (it began its answer with "${first}"${first === 'H' ? ', as HTTP does' : ''})`}`,
      "Check the url's port",
    )
  }
  if (closedMidway(code, name)) {
    return {
      ...failure(
        code ?? 'CONNECTION_CLOSED',
        `cannot reach ${at} (${code ?? 'connection closed'}: the server or the network closed the connection)`,
        'Redis may be restarting or at its maxclients limit' +
          (target.tls === false ? ', or the port expects TLS (a rediss:// url with `tls`)' : '') +
          '; check its log',
      ),
      connectionClosed: true,
    }
  }
  if (reply !== undefined) {
    // An error reply during the handshake (HELLO, AUTH, SELECT): Redis is up but refused the connection.
    return failure(
      reply,
      `${at} refused the connection (${redactUrl(message)})`,
      'Check the ACL user (it needs HELLO, AUTH and the commands in docs/security.md) and the database number',
    )
  }
  const reason = code ?? name
  return failure(reason, `cannot reach ${at} (${reason}: ${redactUrl(message)})`, checkUrl)
}

/**
 * Whether an error is a connection closed midway (`L2Failure.connectionClosed`): a reset, a write to a closed socket,
 * or node-redis's "Socket closed unexpectedly". For the Redis stores' descriptions and the generic one alike.
 */
export function closedMidway(code: string | undefined, name: string): boolean {
  return code === 'ECONNRESET' || code === 'EPIPE' || name === 'SocketClosedUnexpectedlyError'
}

/** The `code`, class name and message of a thrown value. */
function facts(error: unknown): { code: string | undefined; name: string; message: string } {
  if (!(error instanceof Error)) return { code: undefined, name: 'Error', message: String(error) }
  const code = (error as { code?: unknown }).code
  return {
    code: typeof code === 'string' && code !== '' ? code : undefined,
    name: error.constructor?.name ?? error.name,
    message: error.message,
  }
}

/** `address:port` of a Node network error (ECONNREFUSED carries them), or undefined. */
export function addressOfError(error: unknown): string | undefined {
  const { address, port } = (error ?? {}) as { address?: unknown; port?: unknown }
  return typeof address === 'string' && typeof port === 'number' ? `${address}:${port}` : undefined
}

function isTlsFailure(code: string | undefined, message: string): boolean {
  if (code !== undefined) {
    if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code === 'EPROTO') return true
    if (code.includes('CERT') || UNTRUSTED_CERTIFICATE.has(code)) return true
  }
  return /\b(SSL|TLS)\b|certificate/i.test(message)
}

function tlsExplanation(code: string | undefined, message: string): string {
  if (code !== undefined && UNTRUSTED_CERTIFICATE.has(code)) {
    return "the server's certificate is not signed by a CA the cache trusts"
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return "the server's certificate is not for this host name"
  if (code === 'CERT_HAS_EXPIRED') return "the server's certificate has expired"
  if (/certificate required|alert (unknown ca|bad certificate)|alert number (42|48|116)/i.test(message)) {
    return 'the server refused the client certificate, or needs one and got none'
  }
  if (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    /wrong version number|packet length too long/i.test(message)
  ) {
    return 'the port does not speak TLS'
  }
  return redactUrl(message)
}
