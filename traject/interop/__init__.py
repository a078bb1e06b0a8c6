"""Bridges to the field's environment standards: OpenEnv, verifiers, Harbor task directories
and Gymnasium (docs/interop.md). Each module needs the ``interop`` extra and imports its
package lazily."""
