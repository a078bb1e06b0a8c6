"""The customer's own tools in the built-in ``shop`` domain (dual control): the customer can
read what is printed on a package they received. The agent cannot: it must ask."""

from __future__ import annotations

from typing import Any

from traject.environments.customer_service.toolkit import domain_tool


class ShopUserTools:
    def __init__(self, db: dict[str, Any]) -> None:
        self.db = db

    @domain_tool
    def read_package_label(self, order_id: str) -> str:
        """Read the return label code printed on the package of one of your orders.

        Args:
            order_id: The order id written on the package, e.g. "#O1003".
        """
        package = self.db["packages"].get(order_id)
        if package is None:
            raise ValueError(f"you have no package for order {order_id}")
        return package["label_code"]
