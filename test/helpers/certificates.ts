// Makes a throwaway PKI with the openssl CLI for TLS tests: a CA, a server and a client certificate, and a rogue CA.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Paths of PEM files in the directory given to `makeCertificates`. */
export interface Certificates {
  readonly ca: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  /** A client certificate signed by another CA, which the server must refuse. */
  readonly rogueClientCert: string
  readonly rogueClientKey: string
}

/** EC P-256 keys (fast to generate), certificates valid for a day, the server's for 127.0.0.1 and localhost. */
export async function makeCertificates(dir: string): Promise<Certificates> {
  const at = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir, timeout: 20_000 })
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  for (const ca of ['ca', 'rogue-ca']) {
    await openssl(
      'req',
      '-x509',
      ...newKey,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
    )
  }
  writeFileSync(at('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  writeFileSync(at('client.ext'), 'extendedKeyUsage=clientAuth\n')
  const issue = async (name: string, ca: string, ext: string) => {
    await openssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    await openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      ext,
    )
  }
  await issue('server', 'ca', 'server.ext')
  await issue('client', 'ca', 'client.ext')
  await issue('rogue-client', 'rogue-ca', 'client.ext')
  return {
    ca: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    rogueClientCert: at('rogue-client.crt'),
    rogueClientKey: at('rogue-client.key'),
  }
}
