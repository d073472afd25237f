"""Data contracts (ODCS v3 YAML in ``data_contracts/``): load, lint, diff, and enforce them.

The contract is the single source of data rules. Ingestion coerces records to the contract's
types (:mod:`.coerce`), compiles its rules into Great Expectations expectations and runs them
(:mod:`.expectations`); stewards lint and diff contracts with ``ordertower contracts``.
"""

from pipelines.contracts.model import Column, Contract, ContractError, load_contract, load_contracts

__all__ = ["Column", "Contract", "ContractError", "load_contract", "load_contracts"]
