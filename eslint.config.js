// Type-aware lint. The rules that matter most for storage: no floating promises (a dropped
// promise can be a lost write), exhaustive switches, strict boolean expressions, and the
// one-way layering of src/ (STYLE.md principle 6).
import tseslint from 'typescript-eslint';

// Each layer may import only from the layers listed before it; stamp (the embedded stamp's
// wiring) may also import the siblings, and only main and cli may import it.
const layers = ['util', 'wire', 'io', 'rpc', 'metastore', 'stream', 'partition', 'frontend', 'stamp'];
const siblings = ['controller', 'georep', 'observability'];

function layerRule(layer) {
  const index = layers.indexOf(layer);
  const forbidden = index === -1 ? [...layers.slice(5), ...siblings.filter((s) => s !== layer)] : [...layers.slice(index + 1), ...(layer === 'stamp' ? [] : siblings), 'main', 'cli'];
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: forbidden.map((name) => ({ group: [`**/${name}/*`, `../${name}/*`], message: `layer ${layer} may not import from ${name} (STYLE.md principle 6)` })),
      }],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'bench/results/**', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/strict-boolean-expressions': ['error', { allowNullableObject: true, allowNullableBoolean: false, allowString: false, allowNumber: false }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      // node:test's describe/it return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] }],
    },
  },
  ...[...layers, ...siblings].map(layerRule),
);
