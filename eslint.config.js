// Lint rules for the whole tree. TypeScript is linted with type information (typescript-eslint's
// type-checked presets over tsconfig.json); plain JavaScript (examples, bench, browser harnesses)
// with the JavaScript rules only. Formatting belongs to Prettier, not to these rules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'assembly/', 'runs/', 'bench/results/', '**/*.d.ts'] },
  js.configs.recommended,
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node, ...globals.browser, ...globals.worker } },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node, ...globals.browser },
    },
  },
);
