// Runs PGlite (Postgres compiled to WebAssembly) on a worker thread, so its queries never block the API's event
// loop, as a database server in another process would not. Protocol: { id, text, params } in, { id, rows } or
// { id, error } out; { id, snapshot: path } writes the data directory to `path`; { close: true } ends the thread.
// With workerData.snapshot naming a file written earlier, the database starts from it instead of running initdb
// (and the demo's seed): about a second instead of several.
import { Blob, Buffer } from 'node:buffer'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import process from 'node:process'
import { parentPort, threadId, workerData } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'

async function open(snapshot) {
  if (snapshot) {
    try {
      const bytes = await readFile(snapshot)
      return { db: await PGlite.create({ loadDataDir: new Blob([bytes]) }), restored: true }
    } catch {
      // No snapshot yet, or one that does not load: start empty (the demo seeds and writes a new one).
    }
  }
  return { db: await PGlite.create(), restored: false }
}

const { db, restored } = await open(workerData?.snapshot)

parentPort.on('message', async (message) => {
  if (message.close) {
    await db.close()
    parentPort.close()
    return
  }
  try {
    if (message.snapshot) {
      const dump = await db.dumpDataDir('gzip')
      // Written aside then renamed: a process starting meanwhile reads the old file or the new one, never half.
      const partial = `${message.snapshot}.${process.pid}-${threadId}.partial`
      await writeFile(partial, Buffer.from(await dump.arrayBuffer()))
      await rename(partial, message.snapshot).catch(async (error) => {
        await rm(partial, { force: true })
        throw error
      })
      parentPort.postMessage({ id: message.id, rows: [] })
      return
    }
    const result = await db.query(message.text, message.params)
    parentPort.postMessage({ id: message.id, rows: result.rows })
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: { message: error.message, code: error.code } })
  }
})
parentPort.postMessage({ ready: true, restored })
