// The console's build: plain Preact with JSX compiled by esbuild, no
// plugins. The output in dist/ is committed and embedded in the Go
// binary (internal/console), so it must be reproducible: check-dist.sh
// rebuilds it from the sources and the lock file and diffs.
import { defineConfig } from 'vite';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // One small script and one stylesheet; no source maps in the binary.
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
  },
  server: {
    // `npm run dev` against a running server: CLOUDFTPD_API=http://127.0.0.1:8021
    proxy: { '/v1': process.env.CLOUDFTPD_API || 'http://127.0.0.1:8021' },
  },
});
