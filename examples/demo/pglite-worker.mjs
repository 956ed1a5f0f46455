// Runs PGlite (Postgres compiled to WebAssembly) on a worker thread, so its queries never block the API's event
// loop, as a database server in another process would not. Protocol: { id, text, params } in,
// { id, rows } or { id, error } out; { close: true } closes the database and ends the thread.
import { parentPort } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'

const db = await PGlite.create()
parentPort.on('message', async (message) => {
  if (message.close) {
    await db.close()
    parentPort.close()
    return
  }
  try {
    const result = await db.query(message.text, message.params)
    parentPort.postMessage({ id: message.id, rows: result.rows })
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: { message: error.message, code: error.code } })
  }
})
parentPort.postMessage({ ready: true })
