/** The distribution registry configuration isoload runs with: read-only, nothing deleted or purged. */

/** Options of the rendered configuration. */
export interface RegistryConfigOptions {
  /** The storage root as the registry process sees it. */
  rootDirectory: string;
  /** HOST:PORT to listen on. */
  listen: string;
  /** Certificate and key paths, as the registry process sees them, to serve HTTPS. */
  tls?: { certificate: string; key: string };
}

/** YAML text of the configuration (same input, same bytes). */
export function renderRegistryConfig(o: RegistryConfigOptions): string {
  return [
    "# Written by isoload: a read-only registry over a loaded data directory.",
    "version: 0.1",
    "log:",
    "  level: warn",
    "  formatter: text",
    // Readiness probes and every node's pulls would fill the journal: access logs stay off.
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(o.rootDirectory)}`,
    "  delete:",
    "    enabled: false",
    "  redirect:",
    "    disable: true",
    "  cache:",
    "    blobdescriptor: inmemory",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "    readonly:",
    "      enabled: true",
    "http:",
    `  addr: ${JSON.stringify(o.listen)}`,
    ...(o.tls ? ["  tls:", `    certificate: ${JSON.stringify(o.tls.certificate)}`, `    key: ${JSON.stringify(o.tls.key)}`] : []),
    "  headers:",
    "    X-Content-Type-Options: [nosniff]",
    "",
  ].join("\n");
}

/**
 * The same settings as environment variables, which distribution applies over
 * any file: registry images with their own config still end up read-only.
 */
export function registryEnv(o: RegistryConfigOptions): Record<string, string> {
  return {
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: o.rootDirectory,
    REGISTRY_STORAGE_DELETE_ENABLED: "false",
    REGISTRY_STORAGE_MAINTENANCE_READONLY: '{"enabled":true}',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING: '{"enabled":false}',
    REGISTRY_HTTP_ADDR: o.listen,
    REGISTRY_LOG_ACCESSLOG_DISABLED: "true",
    ...(o.tls ? { REGISTRY_HTTP_TLS_CERTIFICATE: o.tls.certificate, REGISTRY_HTTP_TLS_KEY: o.tls.key } : {}),
  };
}
