import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Two pages, served by vendor-server under /v1/dashboard/ (src/api/dashboard.rs): customer.html and
// vendor.html, with hashed assets in /v1/dashboard/assets/. Preact through oxc's JSX options
// (no plugin). No inline script anywhere: the server's Content-Security-Policy forbids it.
export default defineConfig({
  base: '/v1/dashboard/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: {
    alias: { react: 'preact/compat', 'react-dom': 'preact/compat' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Small icons would otherwise be inlined as data: URLs in CSS; keep everything a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2020',
    rollupOptions: {
      input: {
        customer: fileURLToPath(new URL('./customer.html', import.meta.url)),
        vendor: fileURLToPath(new URL('./vendor.html', import.meta.url)),
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
