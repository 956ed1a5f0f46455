// AES-256-GCM for L2 values with node:crypto: a key ring with key ids, so keys rotate without a flag day.
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'
import { InvalidOptionError } from '../errors.js'
import type { OptionKeys } from '../core/known-options.js'

/**
 * Encryption keys by id, and the id new values are encrypted with. Keep a retired key in `keys` until every value
 * written with it has expired (the longest TTL plus stale window of the encrypted namespaces): values under a key
 * no longer in the ring read as misses.
 *
 * @example
 * {
 *   active: '2026-05',
 *   keys: {
 *     '2026-05': Buffer.from(process.env.CACHE_KEY_2026_05!, 'base64'),
 *     '2026-02': Buffer.from(process.env.CACHE_KEY_2026_02!, 'base64'), // still read, no longer written
 *   },
 * }
 */
export interface KeyRing {
  /** The id of the key new values are encrypted with; must be in `keys`. */
  readonly active: string
  /** 32-byte AES-256 keys by id. Ids are 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `-`; each is stored in the envelope. */
  readonly keys: Readonly<Record<string, Uint8Array>>
}

/** The keys of `KeyRing`, checked against it by the compiler. */
export const KEY_RING_OPTION_KEYS = { active: true, keys: true } as const satisfies OptionKeys<KeyRing>

export const KEY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
export const IV_BYTES = 12
export const TAG_BYTES = 16
const KEY_BYTES = 32

/**
 * A validated key ring: keys copied into KeyObjects, so later changes to the caller's buffers change nothing. One
 * instance is shared by a cache and all its namespaces; `replace` swaps the keys for all of them at once.
 */
export class ResolvedKeyRing {
  #activeId: string
  #activeIdBytes: Buffer
  #keys: ReadonlyMap<string, KeyObject>
  #active: KeyObject

  constructor(ring: KeyRing, option: string) {
    const { activeId, keys, active } = validate(ring, option)
    this.#activeId = activeId
    this.#activeIdBytes = Buffer.from(activeId, 'latin1')
    this.#keys = keys
    this.#active = active
  }

  /**
   * Swaps in another ring, validated first (an invalid one throws and changes nothing). Values being encrypted or
   * decrypted right now finish with the ring they started with.
   */
  replace(ring: KeyRing, option: string): void {
    const { activeId, keys, active } = validate(ring, option)
    this.#activeId = activeId
    this.#activeIdBytes = Buffer.from(activeId, 'latin1')
    this.#keys = keys
    this.#active = active
  }

  /** The id of the key new values are encrypted with. */
  get activeId(): string {
    return this.#activeId
  }

  /** The active id as it is written into envelopes (ASCII). */
  get activeIdBytes(): Buffer {
    return this.#activeIdBytes
  }

  /** The key with this id, or undefined when the ring does not hold it (retired, or never ours). */
  key(id: string): KeyObject | undefined {
    return this.#keys.get(id)
  }

  get activeKey(): KeyObject {
    return this.#active
  }

  /** The ids of the keys the ring holds. */
  get ids(): readonly string[] {
    return [...this.#keys.keys()]
  }
}

function validate(
  ring: KeyRing,
  option: string,
): { activeId: string; keys: ReadonlyMap<string, KeyObject>; active: KeyObject } {
  if (ring === null || typeof ring !== 'object') {
    throw new InvalidOptionError(
      option,
      ring,
      "a key ring such as { active: 'k1', keys: { k1: <32 bytes> } }",
    )
  }
  const { active, keys } = ring
  if (keys === null || typeof keys !== 'object') {
    throw new InvalidOptionError(`${option}.keys`, keys, 'an object of 32-byte keys by id')
  }
  const resolved = new Map<string, KeyObject>()
  for (const [id, key] of Object.entries(keys)) {
    if (!KEY_ID_PATTERN.test(id)) {
      throw new InvalidOptionError(
        `${option}.keys`,
        id,
        'key ids of 1 to 64 characters of A-Z, a-z, 0-9, _ . -',
      )
    }
    if (!(key instanceof Uint8Array) || key.byteLength !== KEY_BYTES) {
      throw new InvalidOptionError(
        `${option}.keys.${id}`,
        key instanceof Uint8Array ? `${key.byteLength} bytes` : key,
        "a 32-byte Buffer or Uint8Array, e.g. Buffer.from(secret, 'base64') of `openssl rand -base64 32`",
      )
    }
    resolved.set(id, createSecretKey(Buffer.from(key)))
  }
  const activeKey = typeof active === 'string' ? resolved.get(active) : undefined
  if (activeKey === undefined) {
    throw new InvalidOptionError(
      `${option}.active`,
      active,
      `the id of a key in \`keys\` (${[...resolved.keys()].join(', ') || 'none given'})`,
    )
  }
  return { activeId: active, keys: resolved, active: activeKey }
}

/** A fresh random 96-bit IV: with random IVs, one key stays safe for about 2^32 encryptions (NIST SP 800-38D). */
export function newIv(): Buffer {
  return randomBytes(IV_BYTES)
}

/** AES-256-GCM of `plaintext` under `key`, authenticating `aad` too. Returns ciphertext followed by the 16-byte tag. */
export function seal(key: KeyObject, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  const final = cipher.final()
  return Buffer.concat([body, final, cipher.getAuthTag()])
}

/**
 * Opens what `seal` produced. Returns undefined when the tag does not verify: wrong key, another key's associated
 * data, or any changed byte. Never throws for bad input.
 */
export function open(key: KeyObject, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.byteLength < TAG_BYTES || iv.byteLength !== IV_BYTES) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(aad)
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES))
    const body = decipher.update(sealed.subarray(0, sealed.byteLength - TAG_BYTES))
    return Buffer.concat([body, decipher.final()])
  } catch {
    return undefined
  }
}
