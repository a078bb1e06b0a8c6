"""The SQL env's built-in tasks: a small shop database generated from a seed, and questions
with gold queries over it.

The database is written once per version to ``$TRAJECT_CACHE_DIR/sql/`` (default
``~/.cache/traject/sql/``); the same seed always gives the same file.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from pathlib import Path

from traject.environments.sql.loaders import make_sql_task
from traject.types import Task

VERSION = 1
CITIES = ("Lisbon", "Oslo", "Quito", "Hanoi", "Tunis", "Perth")
FIRST = ("Ada", "Bram", "Chen", "Dalia", "Emre", "Fatou", "Goran", "Hana", "Ivo", "Jun", "Kaia", "Luca",
         "Mira", "Nils", "Olu", "Pia", "Quinn", "Rosa", "Sami", "Tove")
LAST = ("Abe", "Berg", "Costa", "Diaz", "Eze", "Falk", "Grau", "Holm", "Ito", "Jonas")
CATEGORIES = {"tea": ("green tea", "black tea", "oolong", "chai"), "kitchen": ("kettle", "teapot", "mug", "strainer"),
              "books": ("atlas", "cookbook", "novel", "poetry")}
DEPARTMENTS = (("Sales", "Lisbon"), ("Support", "Oslo"), ("Warehouse", "Quito"), ("Finance", "Lisbon"))
STATUSES = ("shipped", "shipped", "shipped", "pending", "cancelled")

SCHEMA = """
CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department_id INTEGER NOT NULL REFERENCES departments(id),
  title TEXT NOT NULL, salary INTEGER NOT NULL, hire_year INTEGER NOT NULL, manager_id INTEGER REFERENCES employees(id));
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, signup_year INTEGER NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
  employee_id INTEGER NOT NULL REFERENCES employees(id), order_date TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE order_items (order_id INTEGER NOT NULL REFERENCES orders(id), product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL, PRIMARY KEY (order_id, product_id));
"""

# (question, gold SQL). Every answer is computed from the database, never written by hand.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("How many customers are there?", "SELECT COUNT(*) FROM customers"),
    ("How many products cost more than 20?", "SELECT COUNT(*) FROM products WHERE price > 20"),
    ("List the names of the products in the tea category, alphabetically.",
     "SELECT name FROM products WHERE category = 'tea' ORDER BY name"),
    ("What is the most expensive product's name?", "SELECT name FROM products ORDER BY price DESC LIMIT 1"),
    ("How many customers live in each city? Give city and count.",
     "SELECT city, COUNT(*) FROM customers GROUP BY city"),
    ("What is the average product price per category?",
     "SELECT category, AVG(price) FROM products GROUP BY category"),
    ("How many orders were cancelled?", "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"),
    ("Which customers signed up in 2021? Give their names.",
     "SELECT name FROM customers WHERE signup_year = 2021"),
    ("How many employees work in the Sales department?",
     "SELECT COUNT(*) FROM employees e JOIN departments d ON e.department_id = d.id WHERE d.name = 'Sales'"),
    ("What is the total salary paid per department name?",
     "SELECT d.name, SUM(e.salary) FROM employees e JOIN departments d ON e.department_id = d.id GROUP BY d.name"),
    ("Who is the highest-paid employee?", "SELECT name FROM employees ORDER BY salary DESC, id LIMIT 1"),
    ("How many orders did each customer place? Give customer name and count, for customers with at least one order.",
     "SELECT c.name, COUNT(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id"),
    ("Which customers have never placed an order? Give their names.",
     "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)"),
    ("What is the total quantity of mugs ordered, over all orders?",
     "SELECT SUM(oi.quantity) FROM order_items oi JOIN products p ON oi.product_id = p.id WHERE p.name = 'mug'"),
    ("What is the revenue (price times quantity) of shipped orders?",
     "SELECT SUM(p.price * oi.quantity) FROM order_items oi JOIN products p ON oi.product_id = p.id "
     "JOIN orders o ON oi.order_id = o.id WHERE o.status = 'shipped'"),
    ("Which product category has the most units ordered?",
     "SELECT p.category FROM order_items oi JOIN products p ON oi.product_id = p.id GROUP BY p.category "
     "ORDER BY SUM(oi.quantity) DESC LIMIT 1"),
    ("How many orders were placed in 2023?", "SELECT COUNT(*) FROM orders WHERE order_date LIKE '2023-%'"),
    ("Which employees have no manager? Give their names.", "SELECT name FROM employees WHERE manager_id IS NULL"),
    ("For each manager, how many people report to them? Give the manager's name and the count.",
     "SELECT m.name, COUNT(e.id) FROM employees e JOIN employees m ON e.manager_id = m.id GROUP BY m.id"),
    ("What is the name of the customer who spent the most on shipped orders?",
     "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items oi ON oi.order_id = o.id "
     "JOIN products p ON p.id = oi.product_id WHERE o.status = 'shipped' GROUP BY c.id "
     "ORDER BY SUM(p.price * oi.quantity) DESC LIMIT 1"),
    ("How many distinct products has the customer with id 1 ever ordered?",
     "SELECT COUNT(DISTINCT oi.product_id) FROM orders o JOIN order_items oi ON oi.order_id = o.id WHERE o.customer_id = 1"),
    ("Which cities have both a customer and a department? List the city names.",
     "SELECT DISTINCT city FROM customers WHERE city IN (SELECT city FROM departments)"),
    ("What is the average salary of employees hired after 2018?",
     "SELECT AVG(salary) FROM employees WHERE hire_year > 2018"),
    ("How many pending orders does each employee handle? Give employee name and count, for those with any.",
     "SELECT e.name, COUNT(*) FROM orders o JOIN employees e ON o.employee_id = e.id WHERE o.status = 'pending' "
     "GROUP BY e.id"),
    ("What is the cheapest product in the kitchen category, and its price?",
     "SELECT name, price FROM products WHERE category = 'kitchen' ORDER BY price LIMIT 1"),
    ("How many order lines have a quantity of at least 3?", "SELECT COUNT(*) FROM order_items WHERE quantity >= 3"),
    ("Which month of 2022 had the most orders? Give it as YYYY-MM.",
     "SELECT substr(order_date, 1, 7) AS m FROM orders WHERE order_date LIKE '2022-%' GROUP BY m "
     "ORDER BY COUNT(*) DESC, m LIMIT 1"),
    ("Which employees earn more than their manager? Give their names.",
     "SELECT e.name FROM employees e JOIN employees m ON e.manager_id = m.id WHERE e.salary > m.salary"),
    ("What is the largest number of items (total quantity) in a single order?",
     "SELECT MAX(t) FROM (SELECT SUM(quantity) AS t FROM order_items GROUP BY order_id)"),
    ("Which customers from Lisbon placed an order handled by someone in the Support department? Give names.",
     "SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id JOIN employees e ON "
     "o.employee_id = e.id JOIN departments d ON e.department_id = d.id WHERE c.city = 'Lisbon' AND d.name = 'Support'"),
    ("How many products were never ordered?",
     "SELECT COUNT(*) FROM products WHERE id NOT IN (SELECT product_id FROM order_items)"),
    ("List each department's name with its number of employees, largest first.",
     "SELECT d.name, COUNT(e.id) AS n FROM departments d LEFT JOIN employees e ON e.department_id = d.id "
     "GROUP BY d.id ORDER BY n DESC, d.name"),
)


def cache_dir() -> Path:
    return Path(os.environ.get("TRAJECT_CACHE_DIR") or Path.home() / ".cache" / "traject")


def generate_database(path: Path, seed: int = 0) -> None:
    """Write the shop database to ``path`` (atomically: a half-written file is never seen)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO departments VALUES (?, ?, ?)",
                         [(i + 1, n, c) for i, (n, c) in enumerate(DEPARTMENTS)])
        names = [f"{f} {last}" for f in FIRST for last in LAST]
        rng.shuffle(names)
        employees = []
        for i in range(14):
            dept = i % len(DEPARTMENTS) + 1
            manager = None if i < len(DEPARTMENTS) else (dept if rng.random() < 0.85 else None)
            title = "Head" if i < len(DEPARTMENTS) else rng.choice(("Clerk", "Associate", "Specialist"))
            employees.append((i + 1, names[i], dept, title, rng.randrange(30, 95) * 1000, rng.randint(2012, 2024), manager))
        conn.executemany("INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?, ?)", employees)
        customers = [(i + 1, names[20 + i], rng.choice(CITIES), rng.randint(2018, 2024)) for i in range(30)]
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customers)
        products = []
        for category, items in CATEGORIES.items():
            for item in items:
                products.append((len(products) + 1, item, category, round(rng.uniform(3, 45), 2)))
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
        orders, lines = [], []
        for oid in range(1, 81):
            customer = rng.randint(1, 26)  # customers 27-30 never order
            year, month, day = rng.choice((2022, 2023, 2024)), rng.randint(1, 12), rng.randint(1, 28)
            orders.append((oid, customer, rng.randint(1, 14), f"{year}-{month:02d}-{day:02d}", rng.choice(STATUSES)))
            for pid in rng.sample(range(1, len(products) - 1), rng.randint(1, 3)):  # the last two never sell
                lines.append((oid, pid, rng.randint(1, 4)))
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders)
        conn.executemany("INSERT INTO order_items VALUES (?, ?, ?)", lines)
        conn.commit()
        conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def builtin_database(seed: int = 0) -> Path:
    path = cache_dir() / "sql" / f"shop-v{VERSION}-seed{seed}.sqlite"
    if not path.is_file():
        generate_database(path, seed)
    return path


def builtin_sql_tasks(split: str = "test", n: int | None = None, seed: int = 0) -> list[Task]:
    """The built-in questions. ``split`` selects every other question ("train": even, "test": odd,
    "all": both), so a model can be trained and tested on different ones."""
    path = builtin_database(seed)
    if split in ("train", "test"):
        picked = [(i, q) for i, q in enumerate(QUESTIONS) if (i % 2 == 0) == (split == "train")]
    elif split in ("all", "validation"):
        picked = list(enumerate(QUESTIONS))
    else:
        raise ValueError(f"unknown split {split!r} for the built-in SQL tasks; use train, test or all")
    tasks = [make_sql_task(f"sql-shop-{i}", db_path=path, db_id="shop", question=q, gold_sql=sql,
                           metadata={"source": "builtin", "split": split}) for i, (q, sql) in picked]
    return tasks if n is None else tasks[:n]
