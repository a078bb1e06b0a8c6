"""The agent's tools of the built-in ``shop`` domain: customers, products and orders in a JSON
database. Write tools are flagged with ``kind="write"``."""

from __future__ import annotations

from typing import Any, Literal

from traject.environments.customer_service.toolkit import domain_tool


class ShopTools:
    def __init__(self, db: dict[str, Any]) -> None:
        self.db = db

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.db["orders"].get(order_id)
        if order is None:
            raise ValueError(f"order {order_id} not found")
        return order

    def _customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.db["customers"].get(customer_id)
        if customer is None:
            raise ValueError(f"customer {customer_id} not found")
        return customer

    @staticmethod
    def _total(order: dict[str, Any]) -> float:
        return round(sum(i["price"] * i["quantity"] for i in order["items"]), 2)

    def _refund(self, order: dict[str, Any], amount: float, payment_method_id: str) -> None:
        customer = self._customer(order["customer_id"])
        method = customer["payment_methods"].get(payment_method_id)
        if method is None:
            raise ValueError(f"payment method {payment_method_id} does not belong to the customer")
        if method["type"] == "gift_card":
            method["balance"] = round(method["balance"] + amount, 2)
        order["refunds"].append({"amount": amount, "payment_method_id": payment_method_id})

    @domain_tool
    def find_customer_by_email(self, email: str) -> str:
        """Find a customer's id from their email address.

        Args:
            email: The customer's email, e.g. "name@example.com".
        """
        for cid, c in self.db["customers"].items():
            if c["email"].lower() == email.strip().lower():
                return cid
        raise ValueError("customer not found")

    @domain_tool
    def get_customer_details(self, customer_id: str) -> dict[str, Any]:
        """Get a customer's name, address, payment methods and order ids.

        Args:
            customer_id: The customer's id, e.g. "C100".
        """
        return self._customer(customer_id)

    @domain_tool
    def get_order_details(self, order_id: str) -> dict[str, Any]:
        """Get an order's status, items, total, address and payment method.

        Args:
            order_id: The order id, e.g. "#O1001".
        """
        order = self._order(order_id)
        shown = {k: v for k, v in order.items() if k != "return_label"}
        shown["total"] = self._total(order)
        return shown

    @domain_tool
    def get_product_details(self, sku: str) -> dict[str, Any]:
        """Get a product's name, price and how many are in stock.

        Args:
            sku: The product's SKU, e.g. "SKU-MUG".
        """
        product = self.db["products"].get(sku)
        if product is None:
            raise ValueError(f"product {sku} not found")
        return product

    @domain_tool(kind="write")
    def cancel_pending_order(self, order_id: str,
                             reason: Literal["no longer needed", "ordered by mistake"]) -> dict[str, Any]:
        """Cancel a pending order and refund it in full to the payment method it was paid with.

        Args:
            order_id: The order id, e.g. "#O1001".
            reason: Why the customer cancels: "no longer needed" or "ordered by mistake".
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ValueError(f"order {order_id} is {order['status']}; only pending orders can be cancelled")
        if reason not in ("no longer needed", "ordered by mistake"):
            raise ValueError("reason must be 'no longer needed' or 'ordered by mistake'")
        order["status"] = "cancelled"
        order["cancel_reason"] = reason
        self._refund(order, self._total(order), order["payment_method_id"])
        return self.get_order_details(order_id)

    @domain_tool(kind="write")
    def modify_pending_order_address(self, order_id: str, street: str, city: str, zip: str) -> dict[str, Any]:
        """Change the shipping address of a pending order.

        Args:
            order_id: The order id, e.g. "#O1001".
            street: Street and number.
            city: City.
            zip: Postal code.
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ValueError(f"order {order_id} is {order['status']}; only a pending order's address can change")
        order["address"] = {"street": street, "city": city, "zip": zip}
        return self.get_order_details(order_id)

    @domain_tool(kind="write")
    def return_delivered_order_items(self, order_id: str, skus: list[str], label_code: str,
                                     payment_method_id: str) -> dict[str, Any]:
        """Return items of a delivered order and refund them. Needs the return label code printed on the
        customer's package.

        Args:
            order_id: The order id, e.g. "#O1003".
            skus: The SKUs of the items to return.
            label_code: The return label code on the package, e.g. "RL-12345".
            payment_method_id: Where the refund goes: the original payment method or one of the customer's gift cards.
        """
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ValueError(f"order {order_id} is {order['status']}; only delivered orders can be returned")
        if label_code.strip().upper() != order.get("return_label"):
            raise ValueError("the return label code does not match this order")
        method = self._customer(order["customer_id"])["payment_methods"].get(payment_method_id)
        if method is None:
            raise ValueError(f"payment method {payment_method_id} does not belong to the customer")
        if payment_method_id != order["payment_method_id"] and method["type"] != "gift_card":
            raise ValueError("refunds go to the original payment method or to a gift card")
        by_sku = {i["sku"]: i for i in order["items"]}
        missing = [s for s in skus if s not in by_sku]
        if missing or not skus:
            raise ValueError(f"items not in the order: {missing or 'none given'}")
        amount = round(sum(by_sku[s]["price"] * by_sku[s]["quantity"] for s in skus), 2)
        order["status"] = "return requested"
        order["returned_skus"] = sorted(set(skus))
        self._refund(order, amount, payment_method_id)
        return self.get_order_details(order_id)

    @domain_tool(kind="generic")
    def transfer_to_human_agents(self, summary: str) -> str:
        """Transfer the customer to a human agent, with a summary of their issue. Only when the customer
        asks for a human, or the policy and tools cannot solve their issue.

        Args:
            summary: A summary of the customer's issue.
        """
        return "Transfer successful"
