/** package.json's version, put in by the build (tsup.config.ts `define`; vitest.config.ts for the sources) */
declare const __TINYGPT_VERSION__: string;

export const TINYGPT_VERSION: string = __TINYGPT_VERSION__;
