// Package customer derives the simulated bank's customers on demand from a
// seed: ten million of them (or any size up to MaxSize) with names, phones,
// accounts, card numbers and opening balances, computed by hashing the seed
// with the customer's index, so nothing is stored and nothing needs seeding.
//
// Every identifier is reverse-derivable: the customer id ("C%08d"), account
// ("A%08d") and card number ("4970", eight index digits, three hash digits and
// a Luhn check digit) all lead back to the index in O(1), and the hash digits
// keep a random but well-formed card number from naming a customer. A few
// named demo customers (alice, bruno, camille) sit beside the population for
// hands-on use.
package customer
