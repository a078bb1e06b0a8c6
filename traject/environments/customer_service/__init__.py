"""The ``customer_service`` env (tau-style): domains with a database, tools and a policy, and a
simulated customer; loads tau2-bench's domain layout."""

from traject.environments.customer_service.domain import Domain, DomainError, load_domain
from traject.environments.customer_service.env import CustomerServiceEnv
from traject.environments.customer_service.state import DomainState
from traject.environments.customer_service.tasks import customer_service_tasks, domain_tasks, gold_state
from traject.environments.customer_service.toolkit import domain_tool

__all__ = ["CustomerServiceEnv", "Domain", "DomainError", "DomainState", "customer_service_tasks", "domain_tasks",
           "domain_tool", "gold_state", "load_domain"]
