// The chaos tests' TCP proxy: the same one the region-split drill cuts, kept in src/ for it.
export * from '../../src/cli/drill/tcp-proxy.js'
