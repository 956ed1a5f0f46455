// Public entry of 'stratacache/disk': the embedded L2 store on local disk, shared by the processes of one host
// (needs the `lmdb` package, version 3).
export { diskStore, DiskStore, type DiskStoreOptions, type DiskStoreStats } from './tiers/disk-store.js'
